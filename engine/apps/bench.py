"""`python -m engine bench`: one table of epoch times, backends side by side.

Every row is timed in the same process and run, on the same synthetic MNIST-shaped
data (60,000 x 784, 10 classes), as the median of a few repeats after a warm-up
epoch. The NumPy backend is the baseline for "speed-up"; the GEMM floor is the
time the very same BLAS calls take alone, in a C loop (EpochPlan.gemm_floor).
PyTorch and scikit-learn rows appear when they are installed.
"""
from __future__ import annotations

import json
import statistics
import sys

import numpy as np

from ..backends.base import DTYPES
from ..machine_load import busy_warning
from .bench_machine import (bf16_fractions, machine_header, machine_info,  # noqa: F401
                            native_machine_info, refine_peak, thread_limits)
from .tables import markdown_table
from .timing import interleaved_times, median_time

WORKLOADS = {
    "lecture 784-100-10 b100": dict(sizes=[784, 100, 10], batch=100),
    "deep 784-32x6-10 b100": dict(sizes=[784] + [32] * 6 + [10], batch=100),
    "wide 784-1024-1024-10 b256": dict(sizes=[784, 1024, 1024, 10], batch=256),
    # regression onto 10 real targets: identity output + mean squared error
    "regression 784-100-10 b100": dict(sizes=[784, 100, 10], batch=100, output="identity",
                                       loss="mse"),
}
N_SAMPLES = 60_000
# a runner whose first epoch takes longer is timed by that epoch alone (timing.py)
ONE_EPOCH_OVER_S = 60.0


def epoch_gflop(sizes, n, batch):
    """GFLOP of the GEMMs of one epoch: forward, weight gradients, and deltas below layer 1."""
    flops = 0.0
    for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        per_row = 2 * n_in * n_out
        flops += per_row * n * (3 if l > 0 else 2)
    return flops / 1e9


def workload_targets(wname, y, dtype):
    """A workload's output/loss pair and the targets it trains on: the labels y, or for a
    regression workload real values, one column per output (seeded)."""
    w = WORKLOADS[wname]
    pair = dict(output=w.get("output", "softmax"), loss=w.get("loss", "cross_entropy"))
    if pair["output"] != "softmax":
        y = np.random.default_rng(1).standard_normal((len(y), w["sizes"][-1])).astype(dtype)
    return pair, y


def make_data(n, n_features=784, n_classes=10, dtype="float32", seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, n_features), dtype=np.float32).astype(dtype)
    y = rng.integers(0, n_classes, n).astype(np.int64)
    return X, y


def backend_epoch(backend_name, sizes, batch, dtype, X, y, hidden="sigmoid", epoch_gemm=None,
                  output="softmax", loss="cross_entropy", precision=None, **optimizer):
    """A callable running one epoch of MLP training on the backend (MLP.epoch_runner).

    epoch_gemm (native only): "tiles" or "blas" instead of the backend's own choice;
    optimizer: fit's optimizer arguments (default plain SGD)."""
    from ..backends import get_backend
    from ..model import MLP
    backend = (get_backend(backend_name, gemm=epoch_gemm) if epoch_gemm is not None
               else backend_name)
    model = MLP(sizes, hidden, output, loss, dtype=dtype, backend=backend, seed=1,
                precision=precision)
    lr = 0.001 if optimizer.get("optimizer") == "adam" else 0.01
    return model.epoch_runner(X, y, batch_size=batch, learning_rate=lr, **optimizer)


def gemm_floor(sizes, batch, dtype, X, y):
    """A callable making exactly the BLAS calls of one native epoch, and nothing else."""
    from ..backends import native_backend
    return native_backend.gemm_floor(sizes, batch, dtype, X, y)


def reference_epoch(sizes, batch, X, y):
    """The textbook NeuralNetMLP loop (float64 NumPy), one epoch."""
    from ..textbook import reference as ref
    X64 = X.astype(np.float64)
    model = ref.NeuralNetMLP(sizes[0], sizes[1], sizes[2])

    def run():
        for xb, yb in ref.minibatch_generator(X64, y, batch):
            a_h, a_out = model.forward(xb)
            g = model.backward(xb, a_h, a_out, yb)
            model.weight_out -= 0.01 * g[0]
            model.bias_out -= 0.01 * g[1]
            model.weight_h -= 0.01 * g[2]
            model.bias_h -= 0.01 * g[3]
    return run


def torch_epoch(sizes, batch, dtype, X, y, threads, autocast=False):
    """PyTorch's epoch of the same network; autocast: under torch.autocast("cpu",
    dtype=torch.bfloat16), PyTorch's own bf16 mixed precision."""
    import contextlib

    import torch
    torch.set_num_threads(threads)
    tdt = torch.float32 if dtype == "float32" else torch.float64
    layers = []
    for l, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if l < len(sizes) - 2:
            layers.append(torch.nn.Sigmoid())
    net = torch.nn.Sequential(*layers).to(tdt)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()
    Xt, yt = torch.from_numpy(X).to(tdt), torch.from_numpy(y)
    order = torch.from_numpy(np.random.default_rng(1).permutation(len(y)))

    mixed = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if autocast \
        else contextlib.nullcontext

    def run():
        for start in range(0, len(y), batch):
            idx = order[start:start + batch]
            opt.zero_grad(set_to_none=False)
            with mixed():
                loss = loss_fn(net(Xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    return run


def sklearn_epoch(sizes, batch, dtype, X, y):
    import warnings
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    clf = MLPClassifier(hidden_layer_sizes=tuple(sizes[1:-1]), activation="logistic",
                        solver="sgd", batch_size=batch, learning_rate_init=0.01, momentum=0.0,
                        max_iter=1, shuffle=True, random_state=1, alpha=0.0, tol=0.0)
    Xd = X.astype(dtype)

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(Xd, y)
    return run


def run_report(workloads=None, dtypes=("float32", "float64"), repeats=3, threads=2,
               n_samples=N_SAMPLES, others=True, progress=True, peak=None):
    """Time every (workload, dtype, runner); returns a list of row dicts. `peak`: the FMA
    peak per dtype (GFLOP/s) the rows are a fraction of; measured first when None."""
    from ..backends import runnable_backends
    backends = runnable_backends()
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if progress else (lambda *a: None)
    with thread_limits(threads):
        if peak is None:
            peak = native_machine_info(threads).get("fma_peak_gflops")
        return _timed_rows(workloads, dtypes, repeats, threads, n_samples, others, backends,
                           log, peak)


def _timed_rows(workloads, dtypes, repeats, threads, n_samples, others, backends, log, peak):
    rows = []
    for wname in workloads or WORKLOADS:
        w = WORKLOADS[wname]
        sizes, batch = w["sizes"], w["batch"]
        gflop = epoch_gflop(sizes, n_samples, batch)
        for dtype in dtypes:
            X, y = make_data(n_samples, sizes[0], sizes[-1], dtype)
            pair, y = workload_targets(wname, y, dtype)
            classify = pair["output"] == "softmax"
            runners = [(name, lambda name=name: backend_epoch(name, sizes, batch, dtype, X, y,
                                                              **pair))
                       for name in backends]
            if "native" in backends:
                runners.append(("native, BLAS products",
                                lambda: backend_epoch("native", sizes, batch, dtype, X, y,
                                                      epoch_gemm="blas", **pair)))
                if not wname.startswith("wide"):
                    runners.append(("native, adam",
                                    lambda: backend_epoch("native", sizes, batch, dtype, X, y,
                                                          optimizer="adam", **pair)))
                    runners.append(("native, dropout 0.2",
                                    lambda: backend_epoch("native", sizes, batch, dtype, X, y,
                                                          dropout=0.2, **pair)))
                runners.append(("GEMM floor", lambda: gemm_floor(sizes, batch, dtype, X, y)))
                if dtype == "float32":
                    runners.append(("native, bf16-mixed",
                                     lambda: backend_epoch("native", sizes, batch, dtype, X, y,
                                                           precision="bf16-mixed", **pair)))
            compare = others and classify   # the other libraries' runners classify
            if compare and len(sizes) == 3 and dtype == "float64":
                runners.append(("reference NeuralNetMLP",
                                lambda: reference_epoch(sizes, batch, X, y)))
            if compare and _importable("torch"):
                runners.append(("pytorch", lambda: torch_epoch(sizes, batch, dtype, X, y,
                                                               threads)))
                if dtype == "float32":
                    runners.append(("pytorch, bf16 autocast",
                                    lambda: torch_epoch(sizes, batch, dtype, X, y, threads,
                                                        autocast=True)))
            if compare and _importable("sklearn") and wname.startswith("lecture"):
                runners.append(("sklearn MLPClassifier",
                                lambda: sklearn_epoch(sizes, batch, dtype, X, y)))
            timed = {}
            log(f"bench: {wname} {dtype}: {', '.join(label for label, _ in runners)} ...")
            for label, times in interleaved_times(runners, repeats,
                                                  once_over=ONE_EPOCH_OVER_S).items():
                med = statistics.median(times)
                timed[label] = med
                one_epoch = len(times) < repeats
                if one_epoch:
                    log(f"bench: {label}: its first epoch took {med:.0f} s, so that epoch "
                        f"alone is its figure")
                rows.append({"workload": wname, "dtype": dtype, "runner": label,
                             "median_s": med, "times_s": times, "one_epoch": one_epoch,
                             "gflops": gflop / med})
            base, floor = timed.get("numpy"), timed.get("GEMM floor")
            for r in rows:
                if r["workload"] == wname and r["dtype"] == dtype:
                    r["speedup_vs_numpy"] = base / r["median_s"] if base else None
                    r["x_gemm_floor"] = r["median_s"] / floor if floor else None
                    if peak:
                        r["fraction_of_peak"] = r["gflops"] / peak[dtype]
    return rows


CONTENTION_WORKLOAD = "lecture 784-100-10 b100"


def contention_report(args, log):
    """`--workload contention`: each runner's lecture epoch (float32), then scikit-learn's
    training-curves example, quiet and beside a busy process (bench_contention.py)."""
    from ..backends import runnable_backends
    from .bench_contention import contention_rows, small_fits_workload
    w = WORKLOADS[CONTENTION_WORKLOAD]
    sizes, batch = w["sizes"], w["batch"]
    X, y = make_data(args.samples, sizes[0], sizes[-1], "float32")
    runners = [(name, lambda name=name: backend_epoch(name, sizes, batch, "float32", X, y))
               for name in runnable_backends()]
    if not args.no_others and _importable("torch"):
        runners.append(("pytorch", lambda: torch_epoch(sizes, batch, "float32", X, y,
                                                       args.threads)))
    workloads = [(CONTENTION_WORKLOAD + " float32", runners)]
    if _importable("sklearn"):
        workloads.append(small_fits_workload(args.samples < N_SAMPLES, not args.no_others))
    with thread_limits(args.threads):
        return contention_rows(workloads, args.repeats, log)


def _importable(name):
    import importlib.util
    return importlib.util.find_spec(name) is not None


def format_table(rows):
    cells = [{"workload": r["workload"], "dtype": r["dtype"],
              "runner": r["runner"] + (" (one epoch)" if r.get("one_epoch") else ""),
              "median s/epoch": f"{r['median_s']:.3f}", "GFLOP/s": f"{r['gflops']:.1f}",
              "speed-up vs numpy": (f"{r['speedup_vs_numpy']:.2f}x"
                                    if r.get("speedup_vs_numpy") else "-"),
              "x GEMM floor": f"{r['x_gemm_floor']:.3f}" if r.get("x_gemm_floor") else "-",
              "of FMA peak": (f"{100 * r['fraction_of_peak']:.0f}%"
                              if r.get("fraction_of_peak") else "-")}
             for r in rows]
    return markdown_table(cells, list(cells[0]) if cells else ["workload"], "lllrrrrr")


def cmd_bench(args):
    # by default the two quick workloads (about 2 minutes on 2 cores); --workload wide adds
    # the 1024-wide network (several seconds per epoch)
    asked = args.workload or []
    contention = any(k in "contention" for k in asked)
    drop_in = any(k in "sklearn" for k in asked)
    textbook = any(k in "textbook" for k in asked)
    scaling = any(k in "distributed" for k in asked)
    workloads = [w for w in WORKLOADS if any(k in w for k in asked)] \
        if asked else [w for w in WORKLOADS if w.startswith(("lecture", "deep"))]
    if not workloads and not (contention or drop_in or textbook or scaling):
        raise ValueError(f"--workload matches none of: {', '.join(WORKLOADS)}, contention, "
                         f"sklearn, textbook, distributed")
    if drop_in and not _importable("sklearn"):
        raise ValueError("--workload sklearn needs scikit-learn: pip install "
                         "\"engine[sklearn]\"")
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if not args.quiet \
        else (lambda *a: None)
    busy = busy_warning()
    if busy:
        log(f"bench: warning: {busy}; the figures below will show it")
    info = machine_info(args.threads)            # the FMA peak first, while nothing spins
    if busy:
        info["busy"] = busy
    rows = run_report(workloads, tuple(args.dtype or DTYPES), args.repeats, args.threads,
                      args.samples, not args.no_others, not args.quiet,
                      info.get("fma_peak_gflops", {})) if workloads else []
    if rows and "fma_peak_gflops" in info:
        refine_peak(info, rows, args.threads)
        bf16_fractions(info, rows)
    loaded = contention_report(args, log) if contention else []
    versus = []
    if drop_in:
        from .bench_sklearn import sklearn_rows
        with thread_limits(args.threads):
            versus = sklearn_rows(args.samples, tuple(args.dtype or DTYPES),
                                  repeats=max(1, args.repeats // 3), log=log)
    loop = []
    if textbook:
        from .bench_textbook import textbook_rows
        with thread_limits(args.threads):
            loop = textbook_rows(args.samples, args.repeats, log=log)
    spread = None
    if scaling:
        from .bench_distributed import distributed_rows
        with thread_limits(args.threads):
            spread = distributed_rows(log)
    info["command"] = "engine bench " + " ".join(sys.argv[2:])
    if args.json:
        print(json.dumps({"machine": info, "rows": rows, "contention": loaded,
                          "sklearn": versus, "textbook": loop,
                          "distributed": None if spread is None else
                          {"rows": spread[0], "local": spread[1]}}, indent=1))
        return 0
    print(machine_header(info, args.threads, args.samples) + "\n")
    if rows:
        print(format_table(rows))
    if loaded:
        from .bench_contention import format_contention_table
        print(("\n" if rows else "") + format_contention_table(loaded))
    if versus:
        from .bench_sklearn import format_sklearn_table
        print(("\n" if rows or loaded else "") + format_sklearn_table(versus))
    if loop:
        from .bench_textbook import format_textbook_table
        print(("\n" if rows or loaded or versus else "") + format_textbook_table(loop))
    if spread:
        from .bench_distributed import format_distributed
        print(("\n" if rows or loaded or versus or loop else "") + format_distributed(*spread))
    return 0


def add_bench_command(sub):
    p = sub.add_parser("bench", help="time epochs per backend against the NumPy reference")
    p.add_argument("--workload", action="append",
                   help="substring of a workload name (lecture, deep, wide, regression), "
                        "contention (the lecture epoch beside a busy process), sklearn "
                        "(engine.sklearn against scikit-learn on MNIST, its defaults), textbook "
                        "(the textbook's train() loop with engine.NeuralNetMLP against "
                        "engine.reference), or "
                        "distributed (engine.distributed's scaling model, its local parts "
                        "measured); repeatable; default: lecture and deep")
    p.add_argument("--dtype", action="append", choices=DTYPES,
                   help="repeatable (default: both)")
    p.add_argument("--repeats", type=int, default=3,
                   help="timed epochs per row after one warm-up; the median is shown "
                        "(default: 3)")
    p.add_argument("--threads", type=int, default=2,
                   help="threads for BLAS (threadpoolctl), the native epoch and PyTorch "
                        "(default: 2)")
    p.add_argument("--samples", type=int, default=N_SAMPLES,
                   help=f"rows per epoch (default: {N_SAMPLES})")
    p.add_argument("--no-others", action="store_true", help="skip PyTorch/scikit-learn rows")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=cmd_bench, dtype=None)
    return p
