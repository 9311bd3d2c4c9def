"""Command line: `python -m engine train|lecture|info|bench|experiment`."""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

from ..backends import backend_choices
from ..backends.base import DTYPES, HIDDEN_ACTIVATIONS, LOSSES, OUTPUT_ACTIVATIONS
from ..data import DATASETS, load_dataset
from ..model import INITS
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
    try:
        return [int(s) for s in text.replace("-", ",").split(",") if s]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--layers wants sizes like 784,100,10; got {text!r}")


def _add_train_args(p):
    p.add_argument("--preset", choices=sorted(PRESETS), help="the lecture's settings")
    p.add_argument("--layers", type=_layers, help="layer sizes, e.g. 784,100,10")
    p.add_argument("--hidden-activation", choices=HIDDEN_ACTIVATIONS)
    p.add_argument("--output-activation", choices=OUTPUT_ACTIVATIONS)
    p.add_argument("--loss", choices=LOSSES)
    p.add_argument("--init", choices=INITS)
    p.add_argument("--init-scale", type=float)
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--learning-rate", "--lr", type=float)
    p.add_argument("--momentum", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--no-shuffle", action="store_true")
    p.add_argument("--dtype", default="float32", choices=DTYPES)
    p.add_argument("--backend", default="auto", choices=backend_choices())
    p.add_argument("--data", default="mnist", choices=DATASETS,
                   help="full MNIST (downloaded once, cached) or the shipped sample")
    p.add_argument("--diagnostics", action="store_true",
                   help="record gradient norms and dead/saturated units per epoch")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--out", help="folder for history.json, plot.png and model.npz")


def _settings(args):
    defaults = dict(layers=[784, 100, 10], hidden_activation="sigmoid",
                    output_activation="softmax", loss="cross_entropy", init="normal",
                    init_scale=0.1, epochs=100, batch_size=100, learning_rate=0.1,
                    momentum=0.0, seed=1)
    s = dict(defaults)
    if args.preset:
        s.update({k: v for k, v in PRESETS[args.preset].items() if k != "expected"})
    for key in defaults:
        value = getattr(args, key, None)
        if value is not None:
            s[key] = value
    return s


def run_training(settings, data, *, dtype, backend, progress, out=None, diagnostics=False,
                 shuffle=True, label="run"):
    """Train one model; returns a result dict (accuracies in percent, seconds)."""
    from ..model import MLP
    X, y, Xt, yt = data
    s = settings
    model = MLP(s["layers"], s["hidden_activation"], s["output_activation"], s["loss"],
                dtype=dtype, backend=backend, seed=s["seed"], init=s["init"],
                init_scale=s["init_scale"])
    t0 = time.perf_counter()
    history = model.fit(X, y, epochs=s["epochs"], batch_size=s["batch_size"],
                        learning_rate=s["learning_rate"], momentum=s["momentum"],
                        shuffle=shuffle, validation_data=(Xt, yt), progress=progress,
                        diagnostics=diagnostics)
    seconds = time.perf_counter() - t0
    result = {"label": label, "backend": model.backend.name, "dtype": dtype,
              "train_acc": 100 * history.epoch_accuracy[-1],
              "test_acc": 100 * history.val_accuracy[-1],
              "train_loss": history.epoch_loss[-1], "test_loss": history.val_loss[-1],
              "seconds": seconds, "epochs": s["epochs"],
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


def print_table(rows, columns, file=None):
    print(markdown_table(rows, columns), file=file or sys.stdout)


def _fmt_row(r, expected=None):
    row = {"run": r["label"], "backend": r["backend"], "dtype": r["dtype"],
           "epochs": r["epochs"], "train acc %": f"{r['train_acc']:.2f}",
           "test acc %": f"{r['test_acc']:.2f}", "time s": f"{r['seconds']:.1f}"}
    if expected:
        row["lecture train/test %"] = f"{expected['train']}/{expected['test']}"
    return row


def cmd_train(args):
    s = _settings(args)
    data = load_dataset(args.data, args.dtype)
    label = args.preset or "custom"
    result, _, _ = run_training(s, data, dtype=args.dtype, backend=args.backend,
                                progress=not args.no_progress, out=args.out,
                                diagnostics=args.diagnostics, shuffle=not args.no_shuffle,
                                label=label)
    expected = PRESETS[args.preset]["expected"] if args.preset else None
    print()
    cols = ["run", "backend", "dtype", "epochs", "train acc %", "test acc %", "time s"]
    print_table([_fmt_row(result, expected)], cols + (["lecture train/test %"] if expected else []))
    if args.out:
        print(f"\nwrote {args.out}/history.json, plot.png, model.npz")
    return 0


def cmd_lecture(args):
    """Both of the lecture's networks, one after the other, and the comparison table."""
    data = load_dataset(args.data, args.dtype)
    rows = []
    for name in ("lecture-mse", "lecture-softmax"):
        s = {k: v for k, v in PRESETS[name].items() if k != "expected"}
        if args.epochs:
            s["epochs"] = args.epochs
        out = os.path.join(args.out, name) if args.out else None
        print(f"== {name}", file=sys.stderr)
        result, _, _ = run_training(s, data, dtype=args.dtype, backend=args.backend,
                                    progress=not args.no_progress, out=out, label=name)
        rows.append(_fmt_row(result, PRESETS[name]["expected"]))
    print()
    print_table(rows, list(rows[0]))
    if args.out:
        with open(os.path.join(args.out, "results.md"), "w") as f:
            print_table(rows, list(rows[0]), file=f)
        print(f"\nplots and histories in {args.out}/lecture-*/")
    return 0


def info_dict():
    from .._version import __version__
    from ..backends import available_backends
    d = {"engine": __version__, "python": platform.python_version(),
         "platform": platform.platform(), "numpy": np.__version__}
    try:
        import scipy
        d["scipy"] = scipy.__version__
    except ImportError:
        pass
    d["cpu_count"] = os.cpu_count()
    d["backends"] = [{"name": b.name, "available": b.available, "reason": b.reason}
                     for b in available_backends()]
    try:
        from threadpoolctl import threadpool_info
        d["threadpools"] = [{k: p.get(k) for k in ("user_api", "internal_api", "num_threads",
                                                   "version", "filepath")}
                            for p in threadpool_info()]
    except ImportError:
        d["threadpools"] = "threadpoolctl not installed"
    try:
        from .. import _native
        d["native_build"] = _native.build_info()
        d["native_product_path"] = _product_path_info(_native.get_epoch_threads())
    except ImportError as exc:
        d["native_build"] = f"not built: {exc}"
    return d


def _product_path_info(threads):
    """What gemm="auto" does on this machine, as measured and cached (never measures)."""
    from ..backends import native_tuning
    forced = os.environ.get("ENGINE_NATIVE_GEMM")
    cached = native_tuning.cached_choices(threads)
    info = {"forced_by_ENGINE_NATIVE_GEMM": forced, "cache": native_tuning.cache_path(),
            "threads": threads}
    for dtype in DTYPES:
        info[dtype] = (f"own tiles up to {cached[dtype]['max_width']} units, BLAS above"
                       if dtype in cached else "not measured yet (at first use, or `engine tune`)")
    return info


def cmd_info(args):
    d = info_dict()
    if args.json:
        print(json.dumps(d, indent=1))
        return 0
    print(f"engine {d['engine']}  python {d['python']}  numpy {d['numpy']}  "
          f"scipy {d.get('scipy', '-')}  ({d['platform']}, {d['cpu_count']} CPUs)")
    print("\nbackends:")
    for b in d["backends"]:
        mark = "yes" if b["available"] else "no "
        print(f"  {b['name']:<7} {mark}  {b['reason']}")
    print("\nnative build:")
    if isinstance(d["native_build"], dict):
        for k, v in d["native_build"].items():
            print(f"  {k}: {v}")
    else:
        print(f"  {d['native_build']}")
    if "native_product_path" in d:
        path = d["native_product_path"]
        print(f"\nnative product path (gemm=\"auto\", {path['threads']} threads; cache "
              f"{path['cache']}):")
        if path["forced_by_ENGINE_NATIVE_GEMM"]:
            print(f"  forced: ENGINE_NATIVE_GEMM={path['forced_by_ENGINE_NATIVE_GEMM']}")
        for dtype in DTYPES:
            print(f"  {dtype}: {path[dtype]}")
    print("\nthread pools (BLAS / OpenMP):")
    if isinstance(d["threadpools"], str):
        print(f"  {d['threadpools']}")
    else:
        for p in d["threadpools"]:
            print(f"  {p['internal_api']:<9} {p['num_threads']} threads  v{p['version']}  "
                  f"{p['filepath']}")
    return 0


def cmd_tune(args):
    """Measure again where the native tiles stop beating BLAS on this machine, and cache it."""
    from .. import _native
    from ..backends import native_tuning
    threads = args.threads or _native.get_epoch_threads()
    rows = []
    for dtype in args.dtype or DTYPES:
        print(f"measuring {dtype} on {threads} threads ...", file=sys.stderr, flush=True)
        native_tuning.tiles_max_width(dtype, threads, retune=True)
        entry = native_tuning.cached_choices(threads)[dtype]
        for width, (tiles, blas) in entry["seconds"].items():
            rows.append({"dtype": dtype, "hidden units": width,
                         "tiles ms/minibatch": f"{1000 * tiles:.3f}",
                         "BLAS ms/minibatch": f"{1000 * blas:.3f}"})
        rows.append({"dtype": dtype, "hidden units": "chosen",
                     "tiles ms/minibatch": f"tiles up to {entry['max_width']} units"})
    print(markdown_table(rows, ["dtype", "hidden units", "tiles ms/minibatch",
                                "BLAS ms/minibatch"], "lrrr"))
    print(f"\nsaved in {native_tuning.cache_path()} for: "
          f"{native_tuning.machine_key(threads)}")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="engine", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train an MLP on MNIST")
    _add_train_args(p)
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("lecture", help="train both lecture networks and compare with the lecture")
    p.add_argument("--epochs", type=int, help="override the 100 epochs (for a quick look)")
    p.add_argument("--dtype", default="float32", choices=DTYPES)
    p.add_argument("--backend", default="auto", choices=backend_choices())
    p.add_argument("--data", default="mnist", choices=DATASETS)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--out", default="runs/lecture")
    p.set_defaults(func=cmd_lecture)
    p = sub.add_parser("info", help="versions, backends, BLAS and thread settings")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("tune", help="measure where the native GEMM tiles stop beating BLAS "
                                    "on this machine (done once automatically; cached)")
    p.add_argument("--dtype", action="append", choices=DTYPES,
                   help="repeatable; default: both")
    p.add_argument("--threads", type=int, default=None,
                   help="the epoch's thread count to tune for (default: the native default)")
    p.set_defaults(func=cmd_tune)
    for extra in _extra_commands():
        extra(sub)
    return parser


def _extra_commands():
    from .bench import add_bench_command
    from .experiments import add_experiment_command
    return [add_bench_command, add_experiment_command]


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, RuntimeError) as exc:
        print(f"engine: error: {exc}", file=sys.stderr)
        return 2
