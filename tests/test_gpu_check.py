"""benches/gpu_check.py, the script a lent GPU will run: its thresholds catch a wrong
kernel, it runs offline end to end and writes its JSON report (checked here on the native
backend, which runs it in seconds; the CUDA kernels themselves are test_cuda.py's)."""
import json
import os
import sys

import numpy as np
import pytest

from engine.backends import get_backend
from engine.backends.numpy_backend import NumpyBackend

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "benches"))
import gpu_check  # noqa: E402

from helpers import AVAILABLE  # noqa: E402


def test_every_kernel_check_passes_on_a_correct_backend(capsys):
    report = gpu_check.Report()
    gpu_check.kernel_parity(get_backend("numpy"), get_backend("numpy"), report, quick=True)
    assert len(report.checks) >= 68 and not report.failed      # 68 with six output/loss pairs


def test_a_wrong_kernel_fails_its_check(capsys):
    class Broken(NumpyBackend):
        def bias_act_(self, z, bias, activation):
            super().bias_act_(z, bias, activation)
            if activation == "tanh":
                z *= 1 + 1e-3             # beyond both dtypes' thresholds
    report = gpu_check.Report()
    gpu_check.kernel_parity(Broken(), get_backend("numpy"), report, quick=True)
    assert report.failed == ["bias+tanh float32", "bias+tanh float64"]


@pytest.mark.skipif("native" not in AVAILABLE, reason="the native extension is not built")
def test_the_whole_check_runs_offline_and_writes_its_report(tmp_path, monkeypatch):
    monkeypatch.delenv("OUT", raising=False)
    code = gpu_check.main(["--quick", "--backend", "native", "--out", str(tmp_path)])
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert code == 0 and report["passed"] and not report["failed"]
    assert any(c["check"].startswith("trained weights native vs numpy float64")
               for c in report["checks"])
    assert report["timings"]["epoch native float32 s"] > 0


def test_an_unavailable_backend_fails_the_check(tmp_path, monkeypatch):
    monkeypatch.setenv("OUT", str(tmp_path))
    assert gpu_check.main(["--quick", "--backend", "nonesuch"]) == 1
    assert json.loads((tmp_path / "gpu_check.json").read_text())["failed"] == [
        "nonesuch backend unavailable"]
