"""A small fuzz run over the defect categories of the round-3 report, for a closing note:
    python benches/fuzz_round3.py [--cases N]
Each category draws random cases and counts outcomes: "refused" (the documented error),
"ok" (accepted and correct), "BAD" (anything else: a crash kills the run, a wrong result or
an undocumented exception is counted). Runs in a temporary folder and HOME; never touches a
device node or the user's cache."""
import argparse
import io
import json
import os
import random
import socket
import sys
import tempfile
import zipfile
from collections import Counter

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def atomic_writes(rng, tmp, n):
    from engine.io import NotARegularFileError, atomic_write_bytes
    out = Counter()
    for i in range(n):
        kind = rng.choice(["fifo", "dir", "socket", "file", "new", "link-fifo", "link-file"])
        path = os.path.join(tmp, f"w{i}")
        target = path + ".t"
        sock = None
        if kind in ("fifo", "link-fifo"):
            os.mkfifo(target if kind == "link-fifo" else path)
        elif kind == "dir":
            os.mkdir(path)
        elif kind == "socket":
            sock = socket.socket(socket.AF_UNIX)
            sock.bind(path)
        elif kind in ("file", "link-file"):
            with open(target if kind == "link-file" else path, "wb") as f:
                f.write(b"old")
        if kind.startswith("link"):
            os.symlink(target, path)
        try:
            atomic_write_bytes(path, b"new")
            real = os.path.realpath(path)
            out["ok" if open(real, "rb").read() == b"new" and kind in ("file", "new", "link-file")
                else "BAD"] += 1
        except NotARegularFileError:
            out["refused" if kind in ("fifo", "dir", "socket", "link-fifo") else "BAD"] += 1
        finally:
            if sock:
                sock.close()
    return out


def tuning_caches(rng, tmp, n):
    from engine.backends import native_tuning as t
    out = Counter()
    shapes = [lambda: {"version": 3}, lambda: {"version": 3, "machines": None},
              lambda: {"version": 3, "machines": []}, lambda: [1, 2], lambda: "x",
              lambda: {"version": 3, "machines": {t.machine_key(2): rng.random()}},
              lambda: {"version": 3, "machines": {t.machine_key(2): {"float32": []}}},
              lambda: {"version": rng.randint(-5, 9), "machines": {}}]
    t.measure = lambda dtype, threads: {"max_width": 64, "seconds": {}, "max_inner_width": 0,
                                        "seconds_inner": {}, "min_team_work": 1,
                                        "seconds_team": {}}
    t.busy_warning = lambda: None
    for i in range(n):
        path = os.path.join(tmp, f"c{i}.json")
        choice = rng.randint(0, len(shapes) + 1)
        if choice == len(shapes):
            text = "[" * rng.randint(1000, 200000)
        elif choice == len(shapes) + 1:
            text = json.dumps(shapes[0]())[: rng.randint(0, 10)]
        else:
            text = json.dumps(shapes[choice]())
        with open(path, "w") as f:
            f.write(text)
        try:
            out["ok" if t.tiles_limits("float32", 2, path=path) == (64, 0) else "BAD"] += 1
        except Exception as exc:       # noqa: BLE001
            out[f"BAD {type(exc).__name__}"] += 1
    return out


def model_files(rng, tmp, n):
    from engine import MLP, ModelFileError
    out = Counter()
    X = np.random.default_rng(0).normal(size=(40, 6))
    model = MLP([6, 5, 3], backend="numpy", dtype="float64", seed=3)
    model.fit(X, np.arange(40) % 3, epochs=1, optimizer="adam", progress=False)
    good = os.path.join(tmp, "good.npz")
    model.save(good)
    edits = [("hidden_activation", "tanh"), ("seed", 9), ("format_version", 2),
             ("format_version", 3), ("init_scale", -1.0), ("dtype", "int8"),
             ("layer_sizes", [6, 5, 4]), ("precision", "fp8")]
    for i in range(n):
        path = os.path.join(tmp, f"m{i}.npz")
        with np.load(good) as f:
            arrays = {k: f[k] for k in f.files}
        meta = json.loads(bytes(arrays["meta"]).decode())
        what = rng.choice(["meta", "bomb", "flip"])
        if what == "meta":
            key, value = rng.choice(edits)
            meta[key] = value
            arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
            np.savez(path, **arrays)
        elif what == "flip":
            data = bytearray(open(good, "rb").read())
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            open(path, "wb").write(bytes(data))
        else:
            with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w") as dst:
                for info in src.infolist():
                    if info.filename != "order.npy":
                        dst.writestr(info, src.read(info))
                header = io.BytesIO()
                np.lib.format.write_array_header_1_0(
                    header, {"descr": "<i8", "fortran_order": False, "shape": (2 ** 28,)})
                member = zipfile.ZipInfo("order.npy")
                member.compress_type = zipfile.ZIP_DEFLATED
                with dst.open(member, "w", force_zip64=True) as f:
                    f.write(header.getvalue() + bytes(1 << 22))
        try:
            loaded = MLP.load(path, backend="numpy")
            same = all(np.array_equal(a, b) for a, b in zip(loaded.weights, model.weights)) \
                and loaded.hidden_activation == model.hidden_activation
            out["ok (unchanged content)" if same else "BAD"] += 1
        except ModelFileError:
            out["refused"] += 1
        except Exception as exc:      # noqa: BLE001
            out[f"BAD {type(exc).__name__}"] += 1
    return out


def native_refusals(rng, tmp, n):
    from engine import _native
    from engine.optimizers import StepRule
    out = Counter()
    for _ in range(n):
        case = rng.choice(["zero-rows", "softmax0", "alias-opt", "alias-gather", "threads",
                           "alias-forward"])
        try:
            if case == "zero-rows":
                z = lambda *s: np.zeros(s)  # noqa: E731
                _native.EpochPlan([z(3, 4) + .1, z(2, 3) + .1], [z(3), z(2)], [z(0, 3), z(0, 2)],
                                  [z(0, 3), z(0, 2)], [z(3), z(2)], z(0, 4),
                                  ("sigmoid", "softmax"), "cross_entropy",
                                  gemm=rng.choice(["tiles", "blas"]))
            elif case == "softmax0":
                _native.bias_act_(np.zeros((rng.randint(1, 9), 0)), np.zeros(0), "softmax")
            elif case == "alias-opt":
                p = np.ones(rng.randint(1, 50))
                _native.optimizer_step_(p, p, (), StepRule("sgd", 0.1))
            elif case == "alias-gather":
                X = np.ones((6, 4))
                _native.gather_(X, np.arange(6) % 3, np.arange(6, dtype=np.int64), X,
                                np.zeros((6, 3)))
            elif case == "threads":
                _native.set_epoch_threads(rng.choice([2 ** 31 - 1, 1025, -3]))
            else:
                x = np.ones((5, 4))
                _native.tiled_forward([np.ones((4, 4))], [np.zeros(4)], ["identity"], x, [x])
            out["BAD (accepted)"] += 1
        except ValueError:
            out["refused"] += 1
    _native.set_epoch_threads(0)
    return out


def sample_weights(rng, tmp, n):
    from engine import MLP
    out = Counter()
    X = np.random.default_rng(1).normal(size=(30, 4)).astype(np.float32)
    y = np.arange(30) % 2
    for _ in range(n):
        scale = 10.0 ** rng.uniform(0, 38)
        backend = rng.choice(["numpy", "native"])
        model = MLP([4, 3, 2], backend=backend, dtype="float32", seed=0)
        try:
            model.fit(X, y, epochs=1, sample_weight=np.full(30, scale, np.float32),
                      progress=False)
            out["ok" if scale * 30 <= np.sqrt(np.finfo(np.float32).max) else "BAD"] += 1
        except ValueError as exc:
            out["refused" if "sums to" in str(exc) else f"BAD {exc}"] += 1
        except Exception as exc:      # noqa: BLE001
            out[f"BAD {type(exc).__name__}"] += 1
    return out


CATEGORIES = {"atomic writes to special files": atomic_writes,
              "ill-formed tuning caches": tuning_caches,
              "edited, forged and bit-flipped model files": model_files,
              "native refusals (0 rows, 0 columns, aliasing, threads)": native_refusals,
              "sample weights up to 1e38 (float32)": sample_weights}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=60, help="cases per category (default 60)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    rng = random.Random(args.seed)
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["HOME"] = tmp
        os.environ["ENGINE_DATA"] = os.path.join(tmp, "cache")
        for name, run in CATEGORIES.items():
            counts = run(rng, tmp, args.cases)
            bad += sum(v for k, v in counts.items() if k.startswith("BAD"))
            print(f"{name}: {dict(counts)}", flush=True)
    print("no bad outcome" if not bad else f"{bad} BAD outcomes")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
