"""float32 against every bf16-mixed epoch this CPU runs: the kernels' own fused epoch on each
bf16 path (bf16="kernels", the path forced), and the float32 tiles on rounded operands
(bf16="tiles", what bf16="auto" runs on a CPU without bf16 instructions). One epoch each,
interleaved; medians in seconds, as a Markdown table row per network
(python benches/bf16_paths.py [reps] [network ...])."""
import sys
import time

import numpy as np

from engine import MLP, _native
from engine.backends import get_backend

NETS = {"lecture": ("lecture 784-100-10 b100", [784, 100, 10], 100, 60000),
        "deep": ("deep 784-32x6-10 b100", [784] + [32] * 6 + [10], 100, 60000),
        "wide": ("wide 784-1024-1024-10 b256", [784, 1024, 1024, 10], 256, 12000)}
rng = np.random.default_rng(0)
paths = [p for p, (ok, _) in _native.bf16_info()["paths"].items() if ok]
best = _native.bf16_info()["path"]
reps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
columns = ["float32"] + paths + ["tiles"]
for key in sys.argv[2:] or list(NETS):
    name, sizes, batch, n = NETS[key]
    X = rng.random((n, 784), dtype=np.float32)
    y = rng.integers(0, 10, n)
    runners = {}
    for cfg in columns:
        be = get_backend("native", bf16="tiles" if cfg == "tiles" else "kernels")
        m = MLP(sizes, "sigmoid", "softmax", "cross_entropy", dtype="float32", backend=be,
                seed=1, precision=None if cfg == "float32" else "bf16-mixed")
        runners[cfg] = m.epoch_runner(X, y, batch_size=batch, learning_rate=0.1)
    times = {c: [] for c in runners}
    for r in range(reps + 1):
        for cfg, run in runners.items():
            if cfg in paths:
                _native.force_bf16_path(cfg)
            t = time.perf_counter()
            run()
            dt = time.perf_counter() - t
            _native.force_bf16_path(None)
            if r:
                times[cfg].append(dt)
    print(f"| {name} | " + " | ".join(f"{np.median(times[c]):.3f}" for c in runners) + " |",
          flush=True)
print("columns:", columns, "best kernel path:", best)
