"""`engine info` and `engine tune`: what this machine runs (versions, backends, BLAS,
threads, the native build and its measured product paths), and measuring those paths again."""
from __future__ import annotations

import json
import os
import platform
import sys

import numpy as np

from ..backends.base import DTYPES
from .tables import markdown_table


def add_info_commands(sub):
    p = sub.add_parser("info", help="versions, backends, BLAS and thread settings")
    p.add_argument("--json", action="store_true", help="print it all as JSON")
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("tune", help="measure where the native GEMM tiles stop beating BLAS "
                                    "on this machine (done once automatically; cached)")
    p.add_argument("--dtype", action="append", choices=DTYPES,
                   help="repeatable; default: both")
    p.add_argument("--threads", type=int, default=None,
                   help="the epoch's thread count to tune for (default: the native default)")
    p.set_defaults(func=cmd_tune)


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
    from ..backends import auto_choice, runnable_backends
    here = runnable_backends()
    d["auto"] = {name: dict(zip(("backend", "why"), auto_choice(sizes, here)))
                 for name, sizes in (("784-100-10", [784, 100, 10]),
                                     ("784-1024-1024-10", [784, 1024, 1024, 10]))}
    try:
        from threadpoolctl import threadpool_info
        d["threadpools"] = [{k: p.get(k) for k in ("user_api", "internal_api", "num_threads",
                                                   "version", "filepath")}
                            for p in threadpool_info()]
    except ImportError:
        d["threadpools"] = "threadpoolctl not installed"
    try:
        from ..backends import native_backend as native
        if not native.available():
            raise ImportError(native.NativeBackend.availability()[1])
        d["native_build"] = native.build_info()
        d["native_product_path"] = _product_path_info(native.epoch_threads())
        d["native_bf16"] = native.bf16_paths()
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
        info[dtype] = (_limits_text(cached[dtype]) if dtype in cached
                       else "not measured yet (at first use, or `engine tune`)")
    return info


def _limits_text(entry):
    from ..backends.native_tuning import work_per_minibatch
    lecture = work_per_minibatch([784, 100, 10], 100)
    return (f"own tiles up to {entry['max_width']} units, and up to {entry['max_inner_width']} "
            f"for a layer fed by a hidden layer (sqrt(n_in * n_out)); BLAS above; a thread "
            f"team from {entry['min_team_work']:,} multiply-adds per minibatch "
            f"(784-100-10 at batch 100: {lecture:,}), one thread below")


# what the less obvious entries of `engine info`'s native build mean
BUILD_NOTES = {
    "openmp_threads": "threads of the elementwise kernels outside the fused epoch; 1 while "
                      "BLAS runs multi-threaded beside them",
    "epoch_threads": "threads of the tiled fused epoch and the tiled forward pass, which call "
                     "no BLAS",
    "tiles_max_width": "the built-in tiles/BLAS cut, used until this machine is measured "
                       "(see below)",
    "simd": "the SIMD variant of the kernels this CPU runs",
}


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
    print("\nbackend=\"auto\" picks, by network:")
    for net, choice in d["auto"].items():
        print(f"  {net}: {choice['backend']} ({choice['why']})")
    print("\nnative build:")
    if isinstance(d["native_build"], dict):
        for k, v in d["native_build"].items():
            print(f"  {k}: {v}" + (f"  ({BUILD_NOTES[k]})" if k in BUILD_NOTES else ""))
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
    if "native_bf16" in d:
        bf16 = d["native_bf16"]
        print(f"\nbf16-mixed products (precision=\"bf16-mixed\"): the {bf16['path']} path")
        for name, (runs, why) in bf16["paths"].items():
            print(f"  {name:<12} {'yes' if runs else 'no '}  {why}")
        if bf16.get("epochs"):
            print(f"  epochs: {bf16['epochs']}")
        if bf16.get("dot_vs_fma"):
            print(f"  (vdpbf16ps runs at {bf16['dot_vs_fma']:.2f}x the float32 FMA rate here; "
                  f"without AMX the avx512-bf16 path is chosen from 1.2x)")
    print("\nthread pools (BLAS / OpenMP):")
    if isinstance(d["threadpools"], str):
        print(f"  {d['threadpools']}")
    else:
        for p in d["threadpools"]:
            version = f"v{p['version']}" if p["version"] else "version not reported"
            print(f"  {p['internal_api']:<9} {p['num_threads']} threads  {version}  "
                  f"{p['filepath']}")
    return 0


def cmd_tune(args):
    """Measure again where the native tiles stop beating BLAS on this machine, and cache it."""
    from ..backends import native_backend, native_tuning
    threads = args.threads or native_backend.epoch_threads()
    rows, chosen = [], []
    for dtype in args.dtype or DTYPES:
        print(f"measuring {dtype} on {threads} threads ...", file=sys.stderr, flush=True)
        entry = native_tuning.measured_entry(dtype, threads, retune=True)
        for shape, key in (("784-w-10", "seconds"), ("784-w-w-10", "seconds_inner")):
            for width, (tiles, blas) in entry[key].items():
                rows.append({"dtype": dtype, "network": shape.replace("w", str(width)),
                             "tiles ms/minibatch": f"{1000 * tiles:.3f}",
                             "BLAS ms/minibatch": f"{1000 * blas:.3f}"})
        chosen.append(f"{dtype}: {_limits_text(entry)}")
    print(markdown_table(rows, ["dtype", "network", "tiles ms/minibatch",
                                "BLAS ms/minibatch"], "llrr"))
    print("\nchosen (gemm=\"auto\"):\n  " + "\n  ".join(chosen))
    print(f"\nsaved in {native_tuning.cache_path()} for: "
          f"{native_tuning.machine_key(threads)}")
    return 0


