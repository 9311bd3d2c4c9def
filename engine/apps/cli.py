"""Command line: `engine train|lecture|predict|evaluate|info|tune|bench|experiment`
(or `python -m engine ...`): train on MNIST or your own data, use a saved model, and see what
this machine runs and how fast."""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from ..backends import backend_choices
from ..backends.base import DTYPES, HIDDEN_ACTIVATIONS, LOSSES, OUTPUT_ACTIVATIONS
from ..data import DATASETS, load_dataset
from .. import fit_options
from ..model import INITS
from ..ops import PAIRS
from ..optimizers import OPTIMIZERS, SCHEDULES
from ..io import atomic_write_bytes
from .tables import markdown_table

# The lecture's two networks (DESIGN.md): 784-100-10, sigmoid hidden, N(0, 0.1)
# weights, zero biases, plain SGD, lr 0.1, batch 100, pixels in [0, 1], 100 epochs.
_LECTURE = dict(layers=[784, 100, 10], hidden_activation="sigmoid", init="normal",
                init_scale=0.1, learning_rate=0.1, batch_size=100, momentum=0.0, epochs=100,
                seed=1)
PRESETS = {
    "lecture-mse": dict(_LECTURE, output_activation="sigmoid", loss="mse",
                        expected={"train": 90.8, "test": 91.3}),
    "lecture-softmax": dict(_LECTURE, output_activation="softmax", loss="cross_entropy",
                            expected={"train": 99.0, "test": 97.6}),
}


def _layers(text):
    # "784,100,10" or "784-100-10"; with commas a "-" is a sign, and is refused below
    sep = "," if "," in text else "-"
    try:
        sizes = [int(part) for part in text.split(sep)]
    except ValueError:
        sizes = []
    if len(sizes) < 2 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"--layers wants two or more positive sizes like 784,100,10; got {text!r}")
    return sizes


# what `engine train` does when neither --preset nor an option says otherwise
TRAIN_DEFAULTS = dict(layers=[784, 100, 10], hidden_activation="sigmoid",
                      output_activation="softmax", loss="cross_entropy", init="normal",
                      init_scale=0.1, epochs=100, batch_size=100, learning_rate=0.1,
                      momentum=0.0, seed=1)


# fit's other options on the command line: (flag, fit argument, argparse keywords); help
# and defaults are the option table's (engine/fit_options.py), and a flag left out passes
# nothing
CHOICES = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES,
           "on_divergence": ("raise", "continue")}


def _flag_of(name):
    """argparse keywords for fit option `name`: its help and default from the table
    (engine/fit_options.py), its type from the default's."""
    option = fit_options.BY_NAME[name]
    default = "none" if option.default is None else option.default
    kw = dict(help=f"{option.help} (default: {default})")
    if isinstance(option.default, bool):
        kw.update(action="store_true", default=None)
    elif name in CHOICES:
        kw.update(choices=CHOICES[name])
    else:
        kw.update(type=int if isinstance(option.default, int) else float,
                  metavar=name.upper().replace("_", "-"))
    return kw


FIT_OPTIONS = tuple(("--" + name.replace("_", "-"), name, _flag_of(name)) for name in (
    "optimizer", "nesterov", "beta_1", "beta_2", "epsilon", "alpha", "dropout", "schedule",
    "power_t", "tol", "n_iter_no_change", "early_stopping", "validation_fraction",
    "on_divergence", "checkpoint_every"))


def _fit_options(args):
    """fit's keyword arguments given on the command line."""
    return {name: getattr(args, name) for _, name, _ in FIT_OPTIONS
            if getattr(args, name, None) is not None}


def _add_train_args(p):
    d = TRAIN_DEFAULTS

    def default(key):
        value = d[key]
        value = ",".join(map(str, value)) if isinstance(value, list) else value
        return f" (default: {value}, or the preset's)"
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help="the lecture's settings (784-100-10, sigmoid hidden, N(0, 0.1) "
                        "weights, lr 0.1, batch 100, 100 epochs) with its MSE or softmax "
                        "output; other options override single settings")
    p.add_argument("--layers", type=_layers, metavar="SIZES",
                   help="layer sizes from inputs to classes, e.g. 784,100,10" + default("layers"))
    p.add_argument("--hidden-activation", choices=HIDDEN_ACTIVATIONS,
                   help="activation of every hidden layer" + default("hidden_activation"))
    p.add_argument("--output-activation", choices=OUTPUT_ACTIVATIONS,
                   help="the output layer, in a pair with --loss: softmax + cross_entropy or "
                        "sigmoid + mse (class labels), sigmoid + binary_cross_entropy (0/1 "
                        "targets: binary with one output, multi-label with k), identity + "
                        "mse (regression, real targets), exp + poisson (counts)"
                        + default("output_activation"))
    p.add_argument("--loss", choices=LOSSES, help="training loss, in a pair with "
                   "--output-activation (see there)" + default("loss"))
    p.add_argument("--init", choices=INITS,
                   help="initial weights: normal N(0, init-scale), he N(0, sqrt(2/fan_in)), "
                        "glorot uniform; biases start at 0" + default("init"))
    p.add_argument("--init-scale", type=float, metavar="SD",
                   help="standard deviation for --init normal" + default("init_scale"))
    p.add_argument("--epochs", type=int, help="passes over the training set" + default("epochs"))
    p.add_argument("--batch-size", type=int, metavar="N",
                   help="rows per minibatch (the last, shorter one is kept)"
                        + default("batch_size"))
    p.add_argument("--learning-rate", "--lr", type=float, metavar="LR",
                   help="SGD step size" + default("learning_rate"))
    p.add_argument("--momentum", type=float, help="SGD momentum in [0, 1)" + default("momentum"))
    p.add_argument("--seed", type=int,
                   help="seeds the initial weights and the shuffling" + default("seed"))
    p.add_argument("--no-shuffle", action="store_true",
                   help="visit the rows in their stored order every epoch (default: shuffle)")
    p.add_argument("--dtype", default="float32", choices=DTYPES,
                   help="floating-point type of the model and data (default: float32)")
    p.add_argument("--precision", choices=("bf16-mixed",), help=PRECISION_HELP)
    p.add_argument("--backend", default="auto", choices=backend_choices(),
                   help="where the math runs; auto takes the fastest available "
                        "(`engine info` lists them) (default: auto)")
    p.add_argument("--data", default="mnist", metavar="DATA",
                   help="mnist (downloaded once, cached), sample (the 2,500/500 sample "
                        "shipped with the package), or your own file: .npz with arrays X, y "
                        "(and X_test, y_test), 'X.npy,y.npy', or .csv with --target; without "
                        "test arrays 10%% of the rows are held out (default: mnist)")
    p.add_argument("--target", metavar="COLUMN",
                   help="with a .csv --data: the target column, by header name or index")
    p.add_argument("--diagnostics", action="store_true",
                   help="also record gradient norms and dead/saturated units per epoch")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--out", metavar="FOLDER",
                   help="folder for history.json, plot.png and model.npz, and checkpoint.npz "
                        "after every epoch (default: a new runs/train-<date>-<time> folder)")
    p.add_argument("--resume", action="store_true",
                   help="go on from --out's checkpoint.npz (from the start when there is "
                        "none), ending where an uninterrupted run ends")
    for flag, name, kw in FIT_OPTIONS:
        p.add_argument(flag, dest=name, **kw)
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel over MPI: run as `mpiexec -n N engine train "
                        "--distributed ...`; each rank trains on its row range, "
                        "--batch-size rows per rank per step (engine.distributed)")
    p.add_argument("--npy", nargs=2, metavar=("X.npy", "Y.npy"),
                   help="with --distributed: train on these .npy files (memory-mapped; "
                        "each rank reads only its rows) instead of --data")


def _settings(args):
    defaults = TRAIN_DEFAULTS
    s = dict(defaults)
    if args.preset:
        s.update({k: v for k, v in PRESETS[args.preset].items() if k != "expected"})
    for key in defaults:
        value = getattr(args, key, None)
        if value is not None:
            s[key] = value
    return s


PRECISION_HELP = ("bf16-mixed: float32 master weights, the training products on bfloat16 "
                  "operands with float32 sums (AMX or AVX512-BF16 where the CPU has them; "
                  "`engine info`); needs --dtype float32 (default: the dtype's own)")


def run_training(settings, data, *, dtype, backend, progress, out=None, diagnostics=False,
                 shuffle=True, label="run", resume=False, precision=None, fit_options=None):
    """Train one model; returns a result dict (accuracies in percent, seconds)."""
    from ..model import MLP
    X, y, Xt, yt = data
    s = settings
    _check_layers_fit_the_data(s["layers"], X, y, Xt, yt)
    model = MLP(s["layers"], s["hidden_activation"], s["output_activation"], s["loss"],
                dtype=dtype, backend=backend, seed=s["seed"], init=s["init"],
                init_scale=s["init_scale"], precision=precision)
    t0 = time.perf_counter()
    # a checkpoint after every epoch beside the results: a killed run goes on with --resume
    checkpoint = os.path.join(out, "checkpoint.npz") if out else None
    # early stopping chooses its epoch on rows held out of the training set, never on the
    # test set, which is then scored once at the end
    early = bool((fit_options or {}).get("early_stopping"))
    try:
        history = model.fit(X, y, epochs=s["epochs"], batch_size=s["batch_size"],
                            learning_rate=s["learning_rate"], momentum=s["momentum"],
                            shuffle=shuffle, validation_data=None if early else (Xt, yt),
                            progress=progress,
                            diagnostics=diagnostics, checkpoint=checkpoint,
                            resume=resume and checkpoint is not None,
                            **(fit_options or {}))
    except KeyboardInterrupt as stop:
        if out:
            model.save(os.path.join(out, "model.npz"))
            print(f"\n{stop}; saved the model as it stands to {os.path.join(out, 'model.npz')}; "
                  f"`--resume` goes on from the last whole epoch in {checkpoint}",
                  file=sys.stderr)
        raise
    seconds = time.perf_counter() - t0
    test = model.evaluate(Xt, yt) if early else \
        {"accuracy": history.val_accuracy[-1], "loss": history.val_loss[-1]}
    result = {"label": label, "backend": model.backend.name, "dtype": model.precision,
              "train_acc": 100 * history.epoch_accuracy[-1],
              "test_acc": 100 * test["accuracy"],
              "train_loss": history.epoch_loss[-1], "test_loss": test["loss"],
              "seconds": seconds, "epochs": history.epochs,
              "train_seconds": float(np.sum(history.epoch_time))}
    if out:
        os.makedirs(out, exist_ok=True)
        history.meta.update(result)
        history.save(os.path.join(out, "history.json"))
        history.plot(os.path.join(out, "plot.png"), title=f"{label}: {model!r}")
        if diagnostics:
            history.plot_diagnostics(os.path.join(out, "diagnostics.png"), title=label)
        model.save(os.path.join(out, "model.npz"))
    return result, history, model


def _check_layers_fit_the_data(layers, X, y, Xt, yt):
    """The first size must be the data's columns and the last its classes: labels 0-9 on a
    100-output network would train without complaint and waste 90 outputs."""
    if layers[0] != X.shape[1]:
        raise ValueError(f"--layers starts with {layers[0]} inputs but the data has "
                         f"{X.shape[1]} columns")
    y_all = np.concatenate([np.ravel(y), np.ravel(yt)]) if yt is not None else np.ravel(y)
    if np.ndim(y) == 1 and np.issubdtype(y_all.dtype, np.integer):
        classes = int(y_all.max()) + 1
        if layers[-1] != classes:
            raise ValueError(f"--layers ends with {layers[-1]} outputs but the data has "
                             f"{classes} classes; the last size must be {classes}")


def print_table(rows, columns, file=None):
    print(markdown_table(rows, columns), file=file or sys.stdout)


def _fmt_row(r, expected=None):
    row = {"run": r["label"], "backend": r["backend"], "dtype": r["dtype"],
           "epochs": r["epochs"], "train acc %": f"{r['train_acc']:.2f}",
           "test acc %": f"{r['test_acc']:.2f}", "time s": f"{r['seconds']:.1f}"}
    if expected:
        row["lecture train/test %"] = f"{expected['train']}/{expected['test']}"
    return row


def _output_folder(out, default_prefix):
    """The folder a run writes to: `out`, or a new runs/<prefix>-<date>-<time>. Refused
    before any training when it names something that is not a folder."""
    if out is None:
        out = os.path.join("runs", time.strftime(f"{default_prefix}-%Y%m%d-%H%M%S"))
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out {out!r} exists and is not a folder; name a folder to write "
                         f"history.json, plot.png and model.npz into")
    return out


def cmd_train(args):
    if args.distributed:
        from .cli_distributed import train_distributed
        return train_distributed(args, _settings(args), _fit_options(args),
                                 lambda: _output_folder(args.out, "train"), _training_data,
                                 print_table)
    if args.npy:
        raise ValueError("--npy goes with --distributed")
    s = _settings(args)
    args.out = _output_folder(args.out, "train")
    data = _training_data(args, s)
    label = args.preset or "custom"
    result, _, _ = run_training(s, data, dtype=args.dtype, backend=args.backend,
                                progress=not args.no_progress, out=args.out,
                                diagnostics=args.diagnostics, shuffle=not args.no_shuffle,
                                label=label, resume=args.resume, precision=args.precision,
                                fit_options=_fit_options(args))
    expected = PRESETS[args.preset]["expected"] if args.preset else None
    print()
    cols = ["run", "backend", "dtype", "epochs", "train acc %", "test acc %", "time s"]
    print_table([_fmt_row(result, expected)], cols + (["lecture train/test %"] if expected else []))
    print(f"\nwrote {os.path.join(args.out, '')}: history.json, plot.png, model.npz")
    return 0


def _training_data(args, settings):
    """(X, y, X_test, y_test) of --data: a built-in data set, or the user's file (whose
    network, unless --layers says otherwise, is n_features-100-n_outputs)."""
    if args.data in DATASETS:
        return load_dataset(args.data, args.dtype)
    from .data_files import is_file_spec, load_features_and_target, outputs_for, split_off_test
    if not is_file_spec(args.data):
        raise ValueError(f"--data {args.data!r}: expected {' or '.join(DATASETS)}, or a .npz, "
                         f".npy pair or .csv file")
    X, y, Xt, yt = load_features_and_target(args.data, args.target)
    if Xt is None:
        X, y, Xt, yt = split_off_test(X, y, settings["seed"])
    kind = PAIRS.get((settings["output_activation"], settings["loss"]))
    given = args.layers is not None or bool(args.preset)
    outputs = outputs_for(y, yt, kind.targets if kind else None, args.data, given)
    if not given and outputs is not None:
        settings["layers"] = [int(np.shape(X)[1]), 100, outputs]
    return X, y, Xt, yt     # the model converts them (and says if a value is out of range)


def cmd_lecture(args):
    """Both of the lecture's networks, one after the other, and the comparison table."""
    args.out = _output_folder(args.out, "lecture")
    data = load_dataset(args.data, args.dtype)
    rows = []
    for name in ("lecture-mse", "lecture-softmax"):
        s = {k: v for k, v in PRESETS[name].items() if k != "expected"}
        if args.epochs:
            s["epochs"] = args.epochs
        out = os.path.join(args.out, name)
        print(f"== {name}", file=sys.stderr)
        result, _, _ = run_training(s, data, dtype=args.dtype, backend=args.backend,
                                    progress=not args.no_progress, out=out, label=name,
                                    precision=args.precision)
        rows.append(_fmt_row(result, PRESETS[name]["expected"]))
    print()
    print_table(rows, list(rows[0]))
    atomic_write_bytes(os.path.join(args.out, "results.md"),
                       (markdown_table(rows, list(rows[0])) + "\n").encode())
    print(f"\nplots, histories and models in {os.path.join(args.out, 'lecture-*', '')}; "
          f"the table in {os.path.join(args.out, 'results.md')}")
    return 0


def build_parser():
    from .._version import __version__
    parser = argparse.ArgumentParser(prog="engine", description=__doc__)
    parser.add_argument("--version", action="version", version=f"engine {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train an MLP on MNIST")
    _add_train_args(p)
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("lecture", help="train both lecture networks and compare with the lecture")
    p.add_argument("--epochs", type=int,
                   help="override the lecture's 100 epochs (for a quick look)")
    p.add_argument("--dtype", default="float32", choices=DTYPES,
                   help="floating-point type (default: float32)")
    p.add_argument("--precision", choices=("bf16-mixed",), help=PRECISION_HELP)
    p.add_argument("--backend", default="auto", choices=backend_choices(),
                   help="where the math runs (default: auto, the fastest available)")
    p.add_argument("--data", default="mnist", choices=DATASETS,
                   help="full MNIST or the shipped sample (default: mnist)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--out", default="runs/lecture", metavar="FOLDER",
                   help="where plots, histories, models and results.md go "
                        "(default: runs/lecture)")
    p.set_defaults(func=cmd_lecture)
    for extra in _extra_commands():
        extra(sub)
    return parser


def _extra_commands():
    from .bench import add_bench_command
    from .cli_info import add_info_commands
    from .cli_predict import add_predict_commands
    from .experiments import add_experiment_command
    return [add_info_commands, add_bench_command, add_experiment_command, add_predict_commands]


def main(argv=None):
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except (ValueError, TypeError, RuntimeError) as exc:
        print(f"engine: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # whenever it comes (a download, the first minibatch, a plot): one line, no traceback
        print("\nengine: interrupted", file=sys.stderr)
        return 130
