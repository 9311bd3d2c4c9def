"""`python -m engine experiment NAME`: the lecture's questions, answered by training runs.

Each experiment trains a few networks with diagnostics on, then writes into --out a
Markdown table (results.md), PNG plots, and meta.json with the seed, backend, versions
and every setting needed to reproduce it.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time

import numpy as np

from ..backends import backend_choices
from ..backends.base import DTYPES
from ..data import DATASETS
from .tables import markdown_table

EXPERIMENTS = {}


def experiment(name, help_text):
    def register(fn):
        EXPERIMENTS[name] = (fn, help_text)
        return fn
    return register


def _fit(ctx, sizes, hidden, output="softmax", loss="cross_entropy", lr=0.1, bias0=None,
         init="normal", init_scale=0.1):
    from ..model import MLP
    X, y, Xt, yt = ctx["data"]
    model = MLP(sizes, hidden, output, loss, dtype=ctx["dtype"], backend=ctx["backend"],
                seed=ctx["seed"], init=init, init_scale=init_scale)
    if bias0 is not None:
        model.set_weights(model.weights, [np.full(b.shape, bias0) for b in model.biases[:-1]]
                         + [model.biases[-1]])
    t0 = time.perf_counter()
    hist = model.fit(X, y, epochs=ctx["epochs"], batch_size=100, learning_rate=lr,
                     validation_data=(Xt, yt), progress=ctx["progress"], diagnostics=True)
    seconds = time.perf_counter() - t0
    return model, hist, seconds


def _pct(x):
    return f"{100 * x:.2f}"


def _table(rows, columns):
    return markdown_table(rows, columns)


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path):
    from ..history import _save_figure
    fig.tight_layout()
    _save_figure(fig, path)
    _plt().close(fig)


def _running_mean(values, k):
    values = np.asarray(values, dtype=float)
    k = max(1, min(k, len(values)))
    return np.convolve(values, np.ones(k) / k, mode="valid")


# ------------------------------------------------------------------------ experiments
@experiment("loss-activation", "sigmoid+MSE vs sigmoid+softmax/CE vs ReLU+softmax/CE")
def loss_activation(ctx):
    configs = [("sigmoid + MSE", "sigmoid", "sigmoid", "mse"),
               ("sigmoid + softmax/CE", "sigmoid", "softmax", "cross_entropy"),
               ("ReLU + softmax/CE", "relu", "softmax", "cross_entropy")]
    rows, runs = [], []
    for label, hidden, output, loss in configs:
        _, hist, sec = _fit(ctx, [784, 100, 10], hidden, output, loss)
        runs.append((label, hist))
        rows.append({"network": label, "train acc %": _pct(hist.epoch_accuracy[-1]),
                     "test acc %": _pct(hist.val_accuracy[-1]),
                     "first-layer grad norm (epoch 1)": f"{hist.diagnostics[0]['grad_norm'][0]:.3g}",
                     "time s": f"{sec:.1f}"})
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for label, hist in runs:
        axes[0].plot(100 * np.asarray(hist.val_accuracy), marker=".", label=label)
        axes[1].plot(_running_mean(hist.batch_loss, hist.batches_per_epoch // 4 or 1), label=label)
        axes[2].plot([d["grad_norm"][0] for d in hist.diagnostics], marker=".", label=label)
    axes[0].set(title="test accuracy per epoch (%)", xlabel="epoch")
    axes[1].set(title="minibatch loss (running mean; MSE and CE differ in scale)",
                xlabel="minibatch", yscale="log")
    axes[2].set(title="mean |dL/dW| of the first layer", xlabel="epoch", yscale="log")
    for ax in axes:
        ax.legend()
        ax.grid(alpha=0.3)
    _save(fig, os.path.join(ctx["out"], "loss-activation.png"))
    return rows, ["loss-activation.png"], (
        "The sigmoid output with MSE multiplies every output delta by a(1-a) <= 1/4, and the "
        "mean over 10 classes divides it by 10 again: its gradients are small and it learns "
        "slowly. Softmax with cross-entropy has the delta (p - y)/n.")


@experiment("depth", "1 to 6 hidden layers, sigmoid vs ReLU: accuracy and vanishing gradients")
def depth(ctx):
    width, depths = ctx["width"], list(range(1, ctx["max_depth"] + 1))
    rows, curves = [], {}
    for hidden in ("sigmoid", "relu"):
        for d in depths:
            init = "he" if hidden == "relu" else "normal"
            _, hist, sec = _fit(ctx, [784] + [width] * d + [10], hidden, init=init)
            first = float(np.mean([e["grad_norm"][0] for e in hist.diagnostics]))
            last = float(np.mean([e["grad_norm"][-1] for e in hist.diagnostics]))
            curves.setdefault(hidden, []).append((d, hist.val_accuracy[-1], first, last))
            rows.append({"hidden": hidden, "hidden layers": d,
                         "train acc %": _pct(hist.epoch_accuracy[-1]),
                         "test acc %": _pct(hist.val_accuracy[-1]),
                         "mean |dL/dW1|": f"{first:.3g}", "mean |dL/dW_out|": f"{last:.3g}",
                         "ratio first/out": f"{first / last:.3g}", "time s": f"{sec:.1f}"})
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for hidden, pts in curves.items():
        d, acc, first, last = map(np.array, zip(*pts))
        axes[0].plot(d, 100 * acc, marker="o", label=hidden)
        axes[1].plot(d, first / last, marker="o", label=hidden)
    axes[0].set(title="test accuracy (%)", xlabel="hidden layers")
    axes[1].set(title="first-layer / output-layer gradient norm", xlabel="hidden layers",
                yscale="log")
    for ax in axes:
        ax.legend()
        ax.grid(alpha=0.3)
    _save(fig, os.path.join(ctx["out"], "depth.png"))
    return rows, ["depth.png"], (
        f"Hidden layers of {width} units; sigmoid nets start from N(0, 0.1) like the lecture, "
        "ReLU nets from He init. Each sigmoid layer multiplies the backward signal by "
        "a(1-a) <= 1/4 and by small weights, so the first layer's gradient shrinks "
        "geometrically with depth.")


def _params(sizes):
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


@experiment("wide-vs-deep", "one wide hidden layer vs several narrow ones at a similar budget")
def wide_vs_deep(ctx):
    wide = [784, ctx["wide"], 10]
    budget = _params(wide)
    rows = []
    configs = [("wide", wide)]
    for layers in (2, 3, 4):
        w = min(range(8, 2048), key=lambda w: abs(_params([784] + [w] * layers + [10]) - budget))
        configs.append((f"deep x{layers}", [784] + [w] * layers + [10]))
    for hidden in ("sigmoid", "relu"):
        for label, sizes in configs:
            init = "he" if hidden == "relu" else "normal"
            _, hist, sec = _fit(ctx, sizes, hidden, init=init)
            rows.append({"network": label, "hidden": hidden, "sizes": "-".join(map(str, sizes)),
                         "parameters": _params(sizes),
                         "train acc %": _pct(hist.epoch_accuracy[-1]),
                         "test acc %": _pct(hist.val_accuracy[-1]), "time s": f"{sec:.1f}"})
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for hidden in ("sigmoid", "relu"):
        sel = [r for r in rows if r["hidden"] == hidden]
        ax.plot([r["network"] for r in sel], [float(r["test acc %"]) for r in sel], marker="o",
                label=hidden)
    ax.set(title=f"test accuracy at ~{budget:,} parameters", ylabel="%")
    ax.legend()
    ax.grid(alpha=0.3)
    _save(fig, os.path.join(ctx["out"], "wide-vs-deep.png"))
    return rows, ["wide-vs-deep.png"], "Narrow widths are chosen to match the wide net's budget."


@experiment("dead-relu", "dead ReLU units against learning rate and initial bias")
def dead_relu(ctx):
    rows, grid = [], {}
    for bias0 in ctx["biases"]:
        for lr in ctx["rates"]:
            _, hist, _ = _fit(ctx, [784, 100, 10], "relu", lr=lr, bias0=bias0, init="he")
            dead = hist.diagnostics[-1]["dead_fraction"][0]
            dead0 = hist.diagnostics[0]["dead_fraction"][0]
            grid.setdefault(bias0, []).append((lr, dead))
            acc = hist.val_accuracy[-1]
            rows.append({"initial bias": bias0, "learning rate": lr,
                         "dead after epoch 1 %": _pct(dead0), "dead at end %": _pct(dead),
                         "test acc %": _pct(acc) if np.isfinite(acc) else "nan"})
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for bias0, pts in grid.items():
        lr, dead = zip(*pts)
        ax.plot(lr, 100 * np.asarray(dead), marker="o", label=f"initial bias {bias0}")
    ax.set(xscale="log", xlabel="learning rate", ylabel="dead hidden units (%)",
           title="ReLU units that output 0 for every training image")
    ax.legend()
    ax.grid(alpha=0.3)
    _save(fig, os.path.join(ctx["out"], "dead-relu.png"))
    return rows, ["dead-relu.png"], (
        "784-100-10, He init. A unit is dead when it outputs 0 for every image of the "
        "training set in the evaluation pass after an epoch: it then gets no gradient and "
        "stays dead.")


# ------------------------------------------------------------------------------ runner
def run_experiment(name, *, out, epochs=5, data="mnist", backend="auto", dtype="float32",
                   seed=1, progress=False, **options):
    from .._version import __version__
    from ..data import load_dataset
    from ..model import MLP
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; expected one of {', '.join(EXPERIMENTS)}")
    os.makedirs(out, exist_ok=True)
    backend_name = MLP([2, 2], backend=backend).backend.name
    ctx = {"data": load_dataset(data, dtype), "epochs": epochs, "backend": backend_name,
           "dtype": dtype, "seed": seed, "progress": progress, "out": out,
           "width": 32, "max_depth": 6, "wide": 256, "rates": [0.01, 0.1, 0.5, 1.0],
           "biases": [0.0, -1.0, -3.0]}
    ctx.update({k: v for k, v in options.items() if v is not None})
    t0 = time.perf_counter()
    fn, help_text = EXPERIMENTS[name]
    rows, plots, note = fn(ctx)
    meta = {"experiment": name, "epochs": epochs, "data": data, "backend": backend_name,
            "dtype": dtype, "seed": seed, "batch_size": 100,
            "options": {k: ctx[k] for k in ("width", "max_depth", "wide", "rates", "biases")},
            "engine": __version__, "numpy": np.__version__, "python": platform.python_version(),
            "seconds": round(time.perf_counter() - t0, 1),
            "command": "python -m engine " + " ".join(sys.argv[1:])}
    md = (f"# {name}: {help_text}\n\n{_table(rows, list(rows[0]))}\n\n{note}\n\n"
          f"{epochs} epochs on {data}, batch 100, backend {backend_name}, {dtype}, seed {seed}, "
          f"{meta['seconds']} s.\n\n" + "".join(f"![{p}]({p})\n" for p in plots))
    from ..io import atomic_write_bytes
    atomic_write_bytes(os.path.join(out, "results.md"), md.encode())
    atomic_write_bytes(os.path.join(out, "meta.json"), json.dumps(meta, indent=1).encode())
    return rows, md


def cmd_experiment(args):
    out = args.out or os.path.join("runs", args.name)
    _, md = run_experiment(args.name, out=out, epochs=args.epochs, data=args.data,
                           backend=args.backend, dtype=args.dtype, seed=args.seed,
                           progress=not args.no_progress)
    print(md)
    print(f"wrote {out}/results.md, meta.json and plots")
    return 0


def add_experiment_command(sub):
    import argparse
    shows = "\n".join(f"  {name:<16} {EXPERIMENTS[name][1]}" for name in sorted(EXPERIMENTS))
    p = sub.add_parser("experiment", help="the lecture's questions: " + ", ".join(EXPERIMENTS),
                       description="Train the networks that answer one of the lecture's "
                                   "questions and write a table (results.md), the settings "
                                   "(meta.json) and plots.\n\nexperiments:\n" + shows
                                   + "\n\n`engine experiment NAME --help` says more of one.",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    names = p.add_subparsers(dest="name", required=True, metavar="NAME",
                             help="which experiment (see above; NAME --help for one)")
    for name in sorted(EXPERIMENTS):
        fn, help_text = EXPERIMENTS[name]
        doc = " ".join((fn.__doc__ or "").split())
        q = names.add_parser(name, help=help_text,
                             description=f"{help_text}. " + (f"{doc} " if doc else "")
                             + f"Writes runs/{name}/ (or --out): results.md (the table), "
                               f"meta.json (every setting) and the plots.")
        q.add_argument("--epochs", type=int, default=5,
                       help="epochs per network (default: 5; the lecture's curves want more)")
        q.add_argument("--data", default="mnist", choices=DATASETS,
                       help="full MNIST or the shipped sample (default: mnist)")
        q.add_argument("--backend", default="auto", choices=backend_choices(),
                       help="where the math runs (default: auto)")
        q.add_argument("--dtype", default="float32", choices=DTYPES,
                       help="floating-point type (default: float32)")
        q.add_argument("--seed", type=int, default=1,
                       help="seeds initial weights and shuffling (default: 1)")
        q.add_argument("--no-progress", action="store_true", help="no progress bars")
        q.add_argument("--out", help=f"folder for results.md, meta.json and plots "
                                     f"(default runs/{name})")
        q.set_defaults(func=cmd_experiment)
    return p
