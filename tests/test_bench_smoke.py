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
