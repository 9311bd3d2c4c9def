"""The command line on the shipped sample."""
import json

from engine.apps.cli import main


def test_train_writes_history_plot_and_model(tmp_path, capsys):
    rc = main(["train", "--data", "sample", "--layers", "784,16,10", "--epochs", "1",
               "--no-progress", "--out", str(tmp_path), "--backend", "numpy"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "train acc %" in out and "test acc %" in out
    for name in ("history.json", "plot.png", "model.npz"):
        assert (tmp_path / name).stat().st_size > 0
    hist = json.loads((tmp_path / "history.json").read_text())
    assert len(hist["epoch_loss"]) == 1 and hist["meta"]["layer_sizes"] == [784, 16, 10]


def test_preset_flags_and_overrides(tmp_path, capsys):
    rc = main(["train", "--preset", "lecture-mse", "--data", "sample", "--epochs", "1",
               "--no-progress"])
    assert rc == 0
    assert "90.8/91.3" in capsys.readouterr().out


def test_bad_arguments_give_a_clear_error(capsys):
    rc = main(["train", "--data", "sample", "--epochs", "1", "--batch-size", "0",
               "--no-progress"])
    assert rc == 2
    assert "batch_size must be an integer >= 1" in capsys.readouterr().err


def test_info_lists_backends(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "numpy" in out and "native" in out and "cuda" in out
    assert main(["info", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert {b["name"] for b in d["backends"]} == {"numpy", "native", "cuda"}
