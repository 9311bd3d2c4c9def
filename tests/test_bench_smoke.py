"""The benchmark suites and the report command must not rot: run one tiny piece of each."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_one_tiny_benchmark_runs():
    cmd = [sys.executable, "-m", "pytest", "benches/test_bench_kernels.py", "-q",
           "-k", "test_softmax and numpy and float32", "-p", "no:cacheprovider",
           "--benchmark-disable"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "1 passed" in proc.stdout


def test_report_prints_a_table(capsys):
    from engine.apps.cli import main
    rc = main(["bench", "--workload", "lecture", "--dtype", "float32", "--samples", "600",
               "--repeats", "1", "--no-others", "--quiet", "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    runners = {r["runner"] for r in report["rows"]}
    assert "numpy" in runners
    for r in report["rows"]:
        assert r["median_s"] > 0 and r["gflops"] > 0
    assert report["machine"]["cores"] >= 1


def test_a_runner_slower_than_the_budget_is_timed_by_its_first_call_alone():
    import time
    from engine.apps.timing import interleaved_times
    calls = {"fast": 0, "slow": 0}

    def runner(label, pause):
        def run():
            calls[label] += 1
            time.sleep(pause)
        return lambda: run

    runners = [("fast", runner("fast", 0.0)), ("slow", runner("slow", 0.05))]
    times = interleaved_times(runners, 3, settle=0.0, once_over=0.03)
    assert calls == {"fast": 4, "slow": 1}
    assert len(times["fast"]) == 3 and len(times["slow"]) == 1 and times["slow"][0] >= 0.05
    times = interleaved_times(runners, 3, settle=0.0)         # no budget: every one 3 times
    assert calls == {"fast": 8, "slow": 5} and len(times["slow"]) == 3


def test_the_table_marks_a_row_timed_by_one_epoch(capsys, monkeypatch):
    from engine.apps import bench
    from engine.apps.cli import main
    monkeypatch.setattr(bench, "ONE_EPOCH_OVER_S", 0.0)      # every runner over budget
    assert main(["bench", "--workload", "lecture", "--dtype", "float32", "--samples", "300",
                 "--repeats", "2", "--no-others"]) == 0
    captured = capsys.readouterr()
    rows = [line for line in captured.out.splitlines() if "| lecture" in line]
    assert rows and all("(one epoch)" in line for line in rows)
    assert "numpy: its first epoch took" in captured.err


def test_report_names_the_machine_and_its_peak(capsys):
    from engine.apps.cli import main
    from engine.backends import runnable_backends
    assert main(["bench", "--workload", "deep", "--dtype", "float64", "--samples", "300",
                 "--repeats", "1", "--no-others", "--quiet"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0]
    assert "cores" in header and "threads" in header
    if "native" in runnable_backends():
        from engine import _native
        assert f"native SIMD: {_native.build_info()['simd']}" in header
        assert "FMA peak" in header and "of FMA peak" in out


def test_contention_workload_times_each_runner_quiet_and_loaded(capsys):
    from engine.apps.cli import main
    assert main(["bench", "--workload", "contention", "--samples", "400", "--repeats", "1",
                 "--no-others", "--quiet", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["contention"]
    assert {r["runner"] for r in rows} >= {"numpy"}
    for r in rows:
        assert r["quiet_s"] > 0 and r["loaded_s"] > 0
        assert abs(r["slowdown"] - r["loaded_s"] / r["quiet_s"]) < 1e-12


def test_fma_peak_is_measured_for_both_dtypes():
    import pytest
    _native = pytest.importorskip("engine._native")
    # the best of interleaved probes: one probe that other work on the core preempted
    # (a CI run beside it) measured float64 above float32 once
    f32 = f64 = 0.0
    for _ in range(5):
        f32 = max(f32, _native.fma_peak_gflops("float32", 1, seconds=0.02))
        f64 = max(f64, _native.fma_peak_gflops("float64", 1, seconds=0.02))
    assert 0.1 < f64 < f32 < 1e5        # twice the lanes of float64 in a vector
    with pytest.raises(TypeError, match="float32 or float64"):
        _native.fma_peak_gflops("int8")


def test_benchmarks_find_the_built_extension_from_a_source_folder(tmp_path):
    """After `pip install .`, pytest run from a source folder imports the source `engine/`,
    which has no compiled extension: the benchmarks must still time the native backend
    (or stop with one line saying what to run), never skip it quietly."""
    import shutil
    import pytest
    pytest.importorskip("engine._native", reason="the native extension is not built")
    src = tmp_path / "src"
    for name in ("engine", "benches"):
        shutil.copytree(os.path.join(ROOT, name), src / name,
                        ignore=shutil.ignore_patterns("*.so", "__pycache__", "results"))
    shutil.copy(os.path.join(ROOT, "pyproject.toml"), src / "pyproject.toml")
    cmd = [sys.executable, "-m", "pytest", "benches/test_bench_kernels.py", "-q", "-rs",
           "-k", "test_softmax and float32", "-p", "no:cacheprovider", "--benchmark-disable"]
    proc = subprocess.run(cmd, cwd=src, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    if proc.returncode == 2:
        assert "pip install -e ." in out            # the one clear line
    else:
        assert proc.returncode == 0, out[-2000:]
        assert "native" in out or "2 passed" in out
        assert "skipped" not in out, out[-2000:]


def test_paired_ab_of_two_builds_runs():
    import pytest
    from helpers import AVAILABLE
    if "native" not in AVAILABLE:
        pytest.skip("the native extension is not built")
    from engine import _native
    build = _native.__file__
    cmd = [sys.executable, "benches/ab_builds.py", build, build, "--rows", "400", "--pairs",
           "3", "--sizes", "20,8,3"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "B/A pairwise median" in proc.stdout


def test_textbook_workload_times_the_unchanged_train_loop_both_ways():
    import numpy as np
    from engine.apps.bench_textbook import format_textbook_table, textbook_rows
    rng = np.random.default_rng(0)
    data = (rng.random((360, 784)), rng.integers(0, 10, 360), "synthetic")
    rows = textbook_rows(repeats=1, log=lambda *a: None, data=data)
    assert [r["runner"] for r in rows] == ["reference.NeuralNetMLP in train()",
                                          "engine.NeuralNetMLP in train()",
                                          "engine.NeuralNetMLP.fit (no evaluation)"]
    for r in rows:
        assert r["median_s"] > 0 and len(r["times_s"]) == 1
        assert abs(r["speedup"] - rows[0]["median_s"] / r["median_s"]) < 1e-12
    table = format_textbook_table(rows)
    assert "engine.NeuralNetMLP in train()" in table and "1.00x" in table
    import pytest
    with pytest.raises(ValueError, match="at least 200 rows"):
        textbook_rows(repeats=1, log=lambda *a: None, data=(data[0][:150], data[1][:150], "x"))


def test_contention_has_a_small_fits_row_and_bench_warns_when_busy(capsys, monkeypatch):
    import pytest
    pytest.importorskip("sklearn")
    from engine.apps import bench
    from engine.apps.cli import main
    monkeypatch.setattr(bench, "busy_warning", lambda: "the machine is busy: a test")
    assert main(["bench", "--workload", "contention", "--samples", "400", "--repeats", "1",
                 "--no-others", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1] == "WARNING: the machine is busy: a test"   # under the header
    assert "small fits (scikit-learn's training-curves example" in out
    assert "engine.sklearn" in out and "scikit-learn |" not in out      # --no-others


def test_bf16_rows_are_a_fraction_of_the_bf16_peak_of_every_thread():
    from engine.apps.bench_machine import bf16_fractions
    info = {"bf16_peak_gflops": 1000.0, "peak_threads": 2}
    rows = [{"runner": "native, bf16-mixed", "gflops": 500.0, "fraction_of_peak": 0.9},
            {"runner": "pytorch, bf16 autocast", "gflops": 300.0, "fraction_of_peak": 1.1},
            {"runner": "native", "gflops": 100.0, "fraction_of_peak": 0.2}]
    bf16_fractions(info, rows)
    assert [r["fraction_of_peak"] for r in rows] == [0.25, 0.15, 0.2]


def test_the_header_says_which_bf16_path_the_bf16_rows_ran_on():
    from engine.apps.bench_machine import machine_header
    info = {"date": "2026-12-06", "cpu": "a CPU", "cores": 2, "blas": "a BLAS",
            "simd": "avx2+fma", "peak_threads": 2,
            "fma_peak_gflops": {"float32": 200.0, "float64": 100.0}}
    amx = machine_header(dict(info, bf16_path="amx", bf16_peak_gflops=3000.0), 2, 600)
    assert "bf16 products: amx, peak 3000 GFLOP/s on 1 thread" in amx
    portable = machine_header(dict(info, bf16_path="portable", bf16_peak_gflops=0.0), 2, 600)
    assert "bf16 products: portable (bf16-mixed epochs: the " \
           "float32 tiles" in portable and "peak 0" not in portable


def test_the_round3_fuzz_run_still_runs_clean():
    """benches/fuzz_round3.py calls internals (EpochPlan's arguments, say) that move: a few
    cases per category, so that a change of them breaks here and not in a note's run."""
    import pytest
    from helpers import AVAILABLE
    if "native" not in AVAILABLE:
        pytest.skip("the native extension is not built")
    cmd = [sys.executable, "benches/fuzz_round3.py", "--cases", "20", "--seed", "3"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "no bad outcome" in proc.stdout
