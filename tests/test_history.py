"""History: a short summary when printed, and plots that say what was trained."""
import numpy as np

import engine


def _history(sample, epochs=3):
    X, y, Xt, yt = sample
    model = engine.MLP([784, 8, 10], "relu", backend="numpy", seed=4)
    return model.fit(X[:600], y[:600], epochs=epochs, batch_size=10,
                     validation_data=(Xt[:200], yt[:200]), progress=False)


def test_repr_is_a_short_summary(sample):
    hist = _history(sample)
    text = repr(hist)
    assert len(hist.batch_loss) == 180 and len(text) < 300, text
    assert "\n" not in text and text == str(hist)
    assert "3 epochs" in text and f"loss {hist.epoch_loss[-1]:.4g}" in text
    best = int(np.argmax(hist.val_accuracy))
    assert f"best {100 * hist.val_accuracy[best]:.2f}% at epoch {best + 1}" in text
    assert "180 minibatch losses" in text
    assert repr(engine.History()) == "History(no epochs yet)"


def test_plots_are_titled_with_what_was_trained(sample, tmp_path, monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.figure
    titles = []
    real = matplotlib.figure.Figure.suptitle
    monkeypatch.setattr(matplotlib.figure.Figure, "suptitle",
                        lambda self, t, **kw: titles.append(t) or real(self, t, **kw))
    hist = _history(sample, epochs=1)
    hist.plot(tmp_path / "plot.png")
    assert (tmp_path / "plot.png").stat().st_size > 0
    assert titles[-1].startswith("MLP 784-8-10, relu hidden, softmax output + cross_entropy")
    assert "lr 0.1, batch 10" in titles[-1] and "float32 on numpy" in titles[-1]
    hist.plot(tmp_path / "mine.png", title="mine")
    assert titles[-1] == "mine"
