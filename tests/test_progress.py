"""The progress bar: tqdm's (tqdm.auto, a widget in notebooks) when tqdm is installed, the
line-mode bar otherwise or when a stream is given; "1 epoch", not "1 epochs"."""
import io
import sys

import numpy as np

from engine import MLP
from engine.progress import ProgressBar


def test_tqdm_draws_the_bar_when_installed(capsys):
    import tqdm  # noqa: F401  (a test dependency: the [test] extra installs it)
    bar = ProgressBar(3, desc="train[numpy]")
    assert bar._tqdm is not None
    for epoch in range(3):
        bar.update(1, f"loss 0.{epoch} acc 50.00%")
    err = capsys.readouterr().err
    assert "train[numpy]" in err and "3/3" in err and "acc 50.00%" in err


def test_the_line_mode_bar_without_tqdm(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)         # as if not installed
    stream = io.StringIO()
    bar = ProgressBar(2, desc="train[native]", stream=stream)
    assert bar._tqdm is None
    bar.update(1, "loss 1.0")
    bar.update(1, "loss 0.5")
    text = stream.getvalue()
    assert "train[native] [" in text and "2/2" in text and "loss 0.5" in text
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert ProgressBar(2)._tqdm is None                         # no tqdm: the line mode


def test_one_epoch_is_singular():
    X = np.random.default_rng(0).normal(size=(20, 4))
    hist = MLP([4, 3, 2], backend="numpy").fit(X, np.arange(20) % 2, epochs=1,
                                               progress=False)
    assert "1 epoch," in repr(hist) and hist.stop_reason == "1 epoch done"
