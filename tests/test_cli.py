"""The command line on the shipped sample."""
import argparse
import json
import os

import pytest

from engine.apps.cli import build_parser, main


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


def test_preset_flags_and_overrides_and_a_default_run_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc = main(["train", "--preset", "lecture-mse", "--data", "sample", "--epochs", "1",
               "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "90.8/91.3" in out
    (run,) = (tmp_path / "runs").iterdir()           # saved without --out, and said where
    assert run.name.startswith("train-") and (run / "model.npz").exists()
    assert f"wrote {os.path.join('runs', run.name, '')}" in out


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


def _subparsers():
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return action.choices


@pytest.mark.parametrize("command", sorted(_subparsers()))
def test_every_option_has_help_text(command):
    parser = _subparsers()[command]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"engine {command} {'/'.join(action.option_strings) or action.dest}"
        has_default = action.default not in (None, False) and action.option_strings
        if has_default and not isinstance(action.default, list):
            assert "default" in action.help, f"engine {command} {action.option_strings}"


def test_experiment_help_says_what_each_shows(capsys):
    with pytest.raises(SystemExit):
        main(["experiment", "--help"])
    out = capsys.readouterr().out
    for name in ("loss-activation", "depth", "wide-vs-deep", "dead-relu"):
        line = [l for l in out.splitlines() if l.strip().startswith(name)]
        assert line and len(line[0].split(name, 1)[1].strip()) > 20, name


@pytest.mark.parametrize("layers", ["784,-5,10", "784,0,10", "784", "784,a,10", "784--5-10"])
def test_bad_layer_sizes_are_refused(layers, capsys):
    with pytest.raises(SystemExit):
        main(["train", "--data", "sample", "--layers", layers])
    assert "two or more positive sizes" in capsys.readouterr().err


def test_out_naming_a_file_is_refused_before_training(tmp_path, capsys):
    target = tmp_path / "model.npz"
    target.write_bytes(b"precious")
    rc = main(["train", "--data", "sample", "--epochs", "1", "--no-progress",
               "--out", str(target)])
    assert rc == 2
    err = capsys.readouterr()
    assert "is not a folder" in err.err and "train acc" not in err.out
    assert target.read_bytes() == b"precious"


def test_info_explains_its_thread_counts_and_leaves_numba_alone():
    import ctypes.util
    import subprocess
    import sys
    code = ("import sys; from engine.apps.cli import main; main(['info']); "
            "print('numba imported:', 'numba' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, NUMBA_ENABLE_CUDASIM="0"))
    assert proc.returncode == 0, proc.stderr
    assert "vNone" not in proc.stdout
    if "openmp_threads" in proc.stdout:
        assert "threads of the elementwise kernels" in proc.stdout
        assert "threads of the tiled fused epoch" in proc.stdout
    if ctypes.util.find_library("cuda") is None:
        # no driver: say so without paying most of a second for importing numba
        assert "numba imported: False" in proc.stdout
        assert "no CUDA driver library" in proc.stdout


def test_resume_refuses_options_that_conflict_with_the_checkpoint(tmp_path, capsys):
    base = ["train", "--data", "sample", "--layers", "784,8,10", "--no-progress",
            "--out", str(tmp_path), "--backend", "numpy"]
    assert main(base + ["--epochs", "1"]) == 0
    capsys.readouterr()
    rc = main(base + ["--epochs", "2", "--resume", "--lr", "0.5"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "learning_rate=0.5" in err and "the checkpoint's: 0.1" in err
    assert main(base + ["--epochs", "2", "--resume"]) == 0           # same settings: goes on
    hist = json.loads((tmp_path / "history.json").read_text())
    assert len(hist["epoch_loss"]) == 2


def test_layers_must_match_the_data(capsys):
    for layers, expect in (("784,100", "100 outputs but the data has 10 classes"),
                           ("100,10", "100 inputs but the data has 784 columns")):
        rc = main(["train", "--data", "sample", "--layers", layers, "--epochs", "1",
                   "--no-progress", "--backend", "numpy"])
        assert rc == 2
        assert expect in capsys.readouterr().err


def test_ctrl_c_anywhere_prints_one_line_and_exits_130(monkeypatch, capsys):
    from engine.apps import cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "load_dataset", interrupted)        # as if during the download
    rc = main(["train", "--data", "sample", "--epochs", "1", "--no-progress"])
    assert rc == 130
    err = capsys.readouterr().err
    assert err.strip() == "engine: interrupted" and "Traceback" not in err


def _own_data(tmp_path):
    """A small 3-class problem in every file form the CLI reads."""
    import numpy as np
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 5)) * 3
    y = rng.integers(0, 3, 120)
    X = centers[y] + rng.normal(size=(120, 5))
    np.savez(tmp_path / "data.npz", X=X, y=y)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    with open(tmp_path / "data.csv", "w") as f:
        f.write("a,b,c,d,e,label\n")
        for row, label in zip(X, y):
            f.write(",".join(f"{v:.6f}" for v in row) + f",{label}\n")
    return X, y


def test_train_predict_and_evaluate_on_your_own_data(tmp_path, capsys):
    import numpy as np
    X, y = _own_data(tmp_path)
    for spec, extra in ((tmp_path / "data.npz", []),
                        (f"{tmp_path / 'X.npy'},{tmp_path / 'y.npy'}", []),
                        (tmp_path / "data.csv", ["--target", "label"])):
        out = tmp_path / f"run-{len(extra)}-{str(spec)[-3:]}"
        rc = main(["train", "--data", str(spec), *extra, "--epochs", "30", "--lr", "0.5",
                   "--no-progress", "--out", str(out), "--backend", "numpy"])
        assert rc == 0, capsys.readouterr().err
        assert "| custom |" in capsys.readouterr().out
        model = engine_load(out / "model.npz")
        assert model.layer_sizes == [5, 100, 3]            # inferred from the data
    assert main(["evaluate", str(out / "model.npz"), str(tmp_path / "data.npz")]) == 0
    line = capsys.readouterr().out
    assert "on 120 rows" in line and "accuracy" in line
    accuracy = float(line.split("accuracy ")[1].rstrip("%\n"))
    assert accuracy > 80
    assert main(["predict", str(out / "model.npz"), str(tmp_path / "X.npy"),
                 "--out", str(tmp_path / "pred.npy")]) == 0
    pred = np.load(tmp_path / "pred.npy")
    assert pred.shape == (120,) and set(np.unique(pred)) <= {0, 1, 2}
    assert main(["predict", str(out / "model.npz"), str(tmp_path / "data.csv"),
                 "--target", "label", "--proba"]) == 0
    rows = capsys.readouterr().out.strip().splitlines()
    assert len(rows) == 120 and len(rows[0].split(",")) == 3


def engine_load(path):
    from engine import MLP
    return MLP.load(path, backend="numpy")


def test_own_data_errors_are_one_line(tmp_path, capsys):
    _own_data(tmp_path)
    cases = [(["--data", str(tmp_path / "data.csv")], "--target"),
             (["--data", str(tmp_path / "missing.npz")], "no such file"),
             (["--data", str(tmp_path / "data.csv"), "--target", "zz"], "no column 'zz'"),
             (["--data", "imagenet"], "expected mnist or sample")]
    for args, expect in cases:
        assert main(["train", *args, "--epochs", "1", "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert expect in err and len(err.strip().splitlines()) == 1, err


def _write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return str(path)


def test_what_spreadsheets_write_and_what_users_get_wrong_in_a_csv(tmp_path, capsys):
    """A byte-order mark, semicolons or tabs are read; a blank or text cell, class names,
    fractional labels, a stray huge label and a value past float32 each get one line that
    says where and what to do (a stray label 1000000 built a million-output network)."""
    import numpy as np
    rows = [(i % 7, (i * 3) % 5, i % 3) for i in range(60)]
    body = lambda sep, lab=lambda r: str(r[2]): "".join(  # noqa: E731
        sep.join([str(r[0]), str(r[1]), lab(r)]) + "\n" for r in rows)
    good = [_write(tmp_path / "bom.csv", "\ufeffkind,b,c\n" + body(","), "utf-8"),
            _write(tmp_path / "semi.csv", "a;b;kind\n" + body(";")),
            _write(tmp_path / "tabs.csv", "a\tb\tkind\n" + body("\t"))]
    for i, path in enumerate(good):
        out = tmp_path / f"out{i}"
        assert main(["train", "--data", path, "--target", "kind", "--epochs", "1",
                     "--no-progress", "--backend", "numpy", "--out", str(out)]) == 0, \
            capsys.readouterr().err
        assert engine_load(out / "model.npz").layer_sizes[0] == 2
    capsys.readouterr()
    names = lambda r: ("cat", "dog", "bird")[r[2]]  # noqa: E731
    bad = [(_write(tmp_path / "bin.csv", bytes(range(256))), "not a UTF-8 text file"),
           (_write(tmp_path / "blank.csv", "a,b,kind\n1,,0\n" + body(",")),
            "data row 1, column 'b' is empty"),
           (_write(tmp_path / "text.csv", "a,b,kind\n" + body(",") + "x,1,0\n"),
            "data row 61, column 'a' is 'x', not a number"),
           (_write(tmp_path / "names.csv", "a,b,kind\n" + body(",", names)),
            "the target column 'kind' holds text ('cat')"),
           (_write(tmp_path / "half.csv", "a,b,kind\n" + body(",", lambda r: f"{r[2]}.5")),
            "not whole numbers (such as "),
           (_write(tmp_path / "stray.csv", "a,b,kind\n" + body(",") + "1,2,1000000\n"),
            "only 4 distinct values occur (0, 1, 2, 1000000)"),
           (_write(tmp_path / "huge.csv", "a,b,kind\n" + body(",") + "1e39,2,0\n"),
            "X holds values beyond float32's range")]
    for path, expect in bad:
        assert main(["train", "--data", path, "--target", "kind", "--epochs", "1",
                     "--no-progress", "--backend", "numpy"]) == 2
        err = capsys.readouterr().err
        assert expect in err and len(err.strip().splitlines()) == 1, err
    model = tmp_path / "out0" / "model.npz"
    assert main(["predict", str(model), good[0]]) == 2          # the target left in
    assert "3 columns for a model of 2 inputs; if one of them is the target, name it " \
        "with --target" in capsys.readouterr().err
    assert main(["predict", str(model), str(tmp_path / "huge.csv"), "--target", "kind"]) == 2
    assert "X holds values beyond float32's range" in capsys.readouterr().err
    # what the messages suggest works: regression flags, or --layers for sparse labels
    out = tmp_path / "regression"
    assert main(["train", "--data", str(tmp_path / "half.csv"), "--target", "kind",
                 "--output-activation", "identity", "--loss", "mse", "--epochs", "1",
                 "--no-progress", "--backend", "numpy", "--out", str(out)]) == 0
    assert engine_load(out / "model.npz").layer_sizes == [2, 100, 1]
    sparse = _write(tmp_path / "sparse.csv", "a,b,kind\n" + body(",", lambda r: str(20 * r[2])))
    assert main(["train", "--data", sparse, "--target", "kind", "--epochs", "1",
                 "--no-progress", "--backend", "numpy"]) == 2
    assert "give --layers ending in 41" in capsys.readouterr().err
    out = tmp_path / "sparse"
    assert main(["train", "--data", sparse, "--target", "kind", "--layers", "2,8,41",
                 "--epochs", "1", "--no-progress", "--backend", "numpy",
                 "--out", str(out)]) == 0
    assert np.shape(engine_load(out / "model.npz").weights[-1]) == (41, 8)


def test_npz_files_of_the_wrong_shape_or_kind_get_one_line(tmp_path, capsys):
    """Each of these ended in a traceback (a cut-off file, y one short) or a message about
    --layers instead of the file; a column vector y is taken as the labels it is."""
    import numpy as np
    r = np.random.default_rng(0)
    X, y = r.random((20, 3)), r.integers(0, 3, 20)
    files = {"cut.npz": None, "x3d.npz": dict(X=r.random((20, 2, 3)), y=y),
             "short.npz": dict(X=X, y=y[:19]), "names.npz": dict(X=X, y=np.array(list("abcd") * 5)),
             "test.npz": dict(X=X, y=y, X_test=r.random((5, 4)), y_test=y[:5]),
             "column.npz": dict(X=X, y=y[:, None])}
    for name, arrays in files.items():
        if arrays is None:
            np.savez(tmp_path / "whole.npz", X=X, y=y)
            (tmp_path / name).write_bytes((tmp_path / "whole.npz").read_bytes()[:200])
        else:
            np.savez(tmp_path / name, **arrays)
    expected = {"cut.npz": "not a readable .npz file", "x3d.npz": "X must be 2-D",
                "short.npz": "X has 20 rows but its targets (y) have 19",
                "names.npz": "the target holds text (<U1)",
                "test.npz": "X_test has 4 columns but X has 3"}
    for name, expect in expected.items():
        assert main(["train", "--data", str(tmp_path / name), "--epochs", "1",
                     "--no-progress", "--backend", "numpy"]) == 2
        err = capsys.readouterr().err
        assert f"{name}: {expect}" in err and len(err.strip().splitlines()) == 1, err
    out = tmp_path / "column"
    assert main(["train", "--data", str(tmp_path / "column.npz"), "--epochs", "1",
                 "--no-progress", "--backend", "numpy", "--out", str(out)]) == 0
    assert engine_load(out / "model.npz").layer_sizes == [3, 100, 3]


def test_version_and_help_name_every_command(capsys):
    import pytest as _pytest
    from engine._version import __version__
    with _pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"engine {__version__}"
    with _pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for command in ("train", "lecture", "predict", "evaluate", "info", "tune", "bench",
                    "experiment"):
        assert command in text


def test_fit_options_on_the_command_line(tmp_path, capsys):
    import json as _json
    _own_data(tmp_path)
    out = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "data.npz"), "--epochs", "40",
                 "--optimizer", "adam", "--lr", "0.01", "--alpha", "1e-4", "--dropout", "0.1",
                 "--schedule", "adaptive", "--early-stopping", "--validation-fraction", "0.2",
                 "--no-progress", "--out", str(out), "--backend", "numpy"]) == 0
    meta = _json.loads((out / "history.json").read_text())["meta"]
    assert meta["optimizer"] == "adam" and meta["alpha"] == 1e-4
    assert meta["schedule"] == "adaptive" and meta["early_stopping"] is True
    assert meta["dropout"] == [0.1, 0.0]
    assert "| custom |" in capsys.readouterr().out


def test_each_experiment_has_its_own_help(capsys):
    texts = {}
    for name in ("loss-activation", "depth", "wide-vs-deep", "dead-relu"):
        with pytest.raises(SystemExit):
            main(["experiment", name, "--help"])
        texts[name] = "".join(capsys.readouterr().out.split())    # argparse wraps lines
        assert f"runs/{name}/" in texts[name] and "results.md" in texts[name]
    assert len(set(texts.values())) == 4                       # not one generic text
