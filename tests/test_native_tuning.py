"""gemm="auto" on the native backend: where the tiles stop beating BLAS is measured on the
machine once, cached per CPU/build/threads, and forced paths never measure."""
import json

import numpy as np
import pytest

pytest.importorskip("engine._native", reason="the native extension is not built")

from engine.apps.cli import main  # noqa: E402
from engine.backends import get_backend, native_tuning  # noqa: E402


@pytest.fixture
def fake_measure(monkeypatch, tmp_path):
    """Replace the timing by a record of calls; the cache goes to a temporary folder."""
    calls = []

    def measure(dtype, threads):
        calls.append((dtype, threads))
        return {"max_width": 300, "seconds": {128: [1e-4, 2e-4], 256: [2e-4, 3e-4]},
                "max_inner_width": 200, "seconds_inner": {128: [2e-4, 3e-4]},
                "min_team_work": 5000, "seconds_team": {32: [1e-5, 1e-5]}}
    monkeypatch.setattr(native_tuning, "measure", measure)
    monkeypatch.setattr(native_tuning, "cache_path", lambda: str(tmp_path / "tuning.json"))
    # a quiet machine, whatever runs beside the tests (a busy one is its own test)
    monkeypatch.setattr(native_tuning, "busy_warning", lambda: None)
    monkeypatch.setattr(native_tuning, "_busy_results", {})
    return calls


def test_measured_once_then_read_from_the_cache(fake_measure, tmp_path):
    assert native_tuning.tiles_limits("float32", 2) == (300, 200)
    assert native_tuning.tiles_limits("float32", 2) == (300, 200)
    assert fake_measure == [("float32", 2)]
    assert native_tuning.tiles_limits("float64", 2) == (300, 200)  # per dtype
    assert native_tuning.tiles_limits("float32", 1) == (300, 200)  # and per thread count
    assert len(fake_measure) == 3
    native_tuning.tiles_limits("float32", 2, retune=True)
    assert len(fake_measure) == 4
    data = json.loads((tmp_path / "tuning.json").read_text())
    key = native_tuning.machine_key(2)
    assert data["machines"][key]["float32"]["max_width"] == 300
    assert "Processor" in key or "|" in key                         # names CPU and build


def test_a_corrupt_cache_is_measured_again(fake_measure, tmp_path):
    (tmp_path / "tuning.json").write_text("{not json")
    assert native_tuning.tiles_limits("float32", 2) == (300, 200)
    assert len(fake_measure) == 1
    json.loads((tmp_path / "tuning.json").read_text())              # rewritten whole


def test_an_incomplete_cache_entry_is_measured_again(fake_measure, tmp_path):
    key = native_tuning.machine_key(2)
    entry = {"float32": {"max_width": 512, "max_inner_width": 256},      # no team cut: v2
             "float64": {"max_width": "x", "max_inner_width": 1, "min_team_work": 0}}
    (tmp_path / "tuning.json").write_text(json.dumps(
        {"version": native_tuning.CACHE_VERSION, "machines": {key: entry}}))
    assert native_tuning.cached_choices(2) == {}            # `engine info`: not measured
    assert native_tuning.tiles_limits("float32", 2) == (300, 200)
    assert native_tuning.tiles_limits("float64", 2) == (300, 200)
    assert len(fake_measure) == 2


def test_auto_uses_the_measurement_and_forced_paths_do_not_measure(fake_measure):
    auto = get_backend("native", gemm="auto", threads=2)
    assert auto.product_path([784, 300, 10], np.float32) == "tiles"
    assert auto.product_path([784, 301, 10], np.float32) == "blas"
    assert auto.product_path([784, 32, 32, 10], np.float32) == "tiles"
    # a layer between hidden layers is held to the inner limit, as sqrt(n_in * n_out)
    assert auto.product_path([784, 200, 200, 10], np.float32) == "tiles"
    assert auto.product_path([784, 201, 201, 10], np.float32) == "blas"
    assert auto.product_path([784, 300, 133, 10], np.float32) == "tiles"   # sqrt(39900) < 200
    assert auto.product_path([784, 300, 135, 10], np.float32) == "blas"    # sqrt(40500) > 200
    assert len(fake_measure) == 1                                   # once per backend and dtype
    for gemm in ("tiles", "blas"):
        forced = get_backend("native", gemm=gemm)
        assert forced.product_path([784, 5000, 10], np.float64) == gemm
    assert len(fake_measure) == 1


def test_the_real_measurement_runs_and_is_bounded(monkeypatch):
    monkeypatch.setattr(native_tuning, "WIDTHS", (16, 32))
    result = native_tuning.measure("float32", 1)
    assert result["max_width"] in (0, 16, 32)
    assert result["max_inner_width"] <= result["max_width"]
    # the inner shape is measured only up to the hidden limit
    assert set(result["seconds_inner"]) <= {w for w in (16, 32) if w <= result["max_width"]}
    for tiles, blas in list(result["seconds"].values()) + list(result["seconds_inner"].values()):
        assert 0 < tiles < 1 and 0 < blas < 1


def test_the_measurement_stops_at_the_crossover(monkeypatch):
    """Tiles slower than BLAS by more than the margin at a width end the search there:
    that width and wider ones take BLAS; the inner shape is measured below it only."""
    monkeypatch.setattr(native_tuning, "WIDTHS", (16, 32, 64))
    monkeypatch.setattr(native_tuning, "BLAS_SPIN_SECONDS", 0)
    timed = []

    def fake(width, hidden, dtype, gemm, threads):
        timed.append((width, hidden, gemm))
        slower = 2.0 if (gemm == "tiles" and width >= (32 if hidden == 1 else 16)) else 1.0
        return 1e-3 * width * slower
    monkeypatch.setattr(native_tuning, "_seconds_per_minibatch", fake)
    monkeypatch.setattr(native_tuning, "_team_cut", lambda dtype, threads: (0, {}))
    result = native_tuning.measure("float32", 2)
    assert result["max_width"] == 16 and result["max_inner_width"] == 0
    assert (64, 1, "tiles") not in timed                   # nothing past the crossover
    assert {w for w, h, _ in timed if h == 2} == {16}       # inner: up to the hidden limit


def test_engine_tune_prints_and_caches(fake_measure, capsys):
    from engine import _native
    threads = _native.get_epoch_threads()         # what `engine info` reports on
    assert main(["tune", "--dtype", "float32", "--threads", str(threads)]) == 0
    out = capsys.readouterr().out
    assert "own tiles up to 300 units, and up to 200 for a layer fed by a hidden" in out
    assert "784-128-128-10" in out and fake_measure == [("float32", threads)]
    assert "a thread team from 5,000 multiply-adds per minibatch" in out
    assert main(["info"]) == 0
    assert "float32: own tiles up to 300 units, and up to 200" in capsys.readouterr().out


def test_engine_tune_prints_when_the_cache_cannot_be_written(fake_measure, monkeypatch,
                                                            capsys):
    def read_only(path, data):
        raise PermissionError(f"read-only: {path}")
    monkeypatch.setattr(native_tuning, "atomic_write_bytes", read_only)
    assert main(["tune", "--dtype", "float64", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "own tiles up to 300 units, and up to 200" in out and "784-128-10" in out
    assert native_tuning.cached_choices(1) == {}                   # nothing was written



@pytest.mark.parametrize("content", [
    {"version": 2}, {"version": 2, "machines": None}, {"version": 2, "machines": []},
    {"version": 2, "machines": {"k": 5}}, [1, 2], "text", None])
def test_a_cache_of_the_wrong_shape_is_measured_again(fake_measure, tmp_path, content):
    if isinstance(content, dict) and content.get("machines") == {"k": 5}:
        content["machines"] = {native_tuning.machine_key(2): 5}
    (tmp_path / "tuning.json").write_text(json.dumps(content))
    assert native_tuning.cached_choices(2) == {}
    assert native_tuning.tiles_limits("float32", 2) == (300, 200)
    assert fake_measure == [("float32", 2)]
    data = json.loads((tmp_path / "tuning.json").read_text())
    assert data["machines"][native_tuning.machine_key(2)]["float32"]["max_width"] == 300


def test_a_deeply_nested_cache_is_measured_again(fake_measure, tmp_path):
    (tmp_path / "tuning.json").write_text("[" * 100000 + "]" * 100000)
    assert native_tuning.tiles_limits("float64", 2) == (300, 200)
    assert len(fake_measure) == 1


def test_a_cache_that_is_a_fifo_neither_blocks_nor_is_replaced(fake_measure, tmp_path):
    import os
    import stat
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "tuning.json").symlink_to(fifo)          # as a cache "disabled" by a link
    assert native_tuning.tiles_limits("float32", 2) == (300, 200)
    assert native_tuning.tiles_limits("float32", 2) == (300, 200)
    assert len(fake_measure) == 2              # measured each time: nothing was written
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert native_tuning.cached_choices(2) == {}


def test_the_team_cut_is_the_first_width_where_the_team_pays(monkeypatch):
    """Work per minibatch below the cut trains on one thread: the team gains nothing
    there on a quiet machine and loses many times over beside other work."""
    def fake(width, hidden, dtype, gemm, threads):
        gain = 1.3 if width >= 32 else 1.05
        return 1e-5 * width / (gain if threads > 1 else 1.0)
    monkeypatch.setattr(native_tuning, "_seconds_per_minibatch", fake)
    work, seconds = native_tuning._team_cut("float32", 2)
    assert work == native_tuning.work_per_minibatch([784, 32, 10], 100)
    assert sorted(seconds) == [8, 16, 32]                           # stops where it pays
    assert native_tuning._team_cut("float32", 1) == (0, {})          # no team to size


def test_a_team_measured_slow_once_is_measured_again(monkeypatch):
    """A descheduled teammate at the smallest width must not push the cut up for good:
    the width that failed is timed again and the better time of each side kept."""
    calls = []

    def fake(width, hidden, dtype, gemm, threads):
        calls.append((width, threads))
        hiccup = threads > 1 and width == 8 and calls.count((8, threads)) == 1
        return 1e-5 * width / (0.5 if hiccup else 1.3 if threads > 1 else 1.0)
    monkeypatch.setattr(native_tuning, "_seconds_per_minibatch", fake)
    work, seconds = native_tuning._team_cut("float32", 2)
    assert work == native_tuning.work_per_minibatch([784, 8, 10], 100)
    assert calls == [(8, 1), (8, 2), (8, 1), (8, 2)]
    assert seconds[8][0] / seconds[8][1] == pytest.approx(1.3)


def test_small_networks_train_on_one_thread_under_auto(fake_measure):
    auto = get_backend("native", gemm="auto", threads=2)
    small, large = [4, 8, 2], [784, 100, 10]                       # 5,000 is the fake cut
    assert native_tuning.work_per_minibatch(small, 100) == 4800
    assert auto.team_threads(small, 100, np.float32) == 1
    assert auto.team_threads(large, 100, np.float32) == 2
    assert get_backend("native", gemm="tiles", threads=2).team_threads(small, 100,
                                                                      np.float32) == 2


def test_a_busy_machine_gets_a_warning_and_no_cache(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(native_tuning, "measure", lambda dtype, threads: calls.append(1) or {
        "max_width": 64, "seconds": {}, "max_inner_width": 0, "seconds_inner": {},
        "min_team_work": 1, "seconds_team": {}})
    monkeypatch.setattr(native_tuning, "busy_warning", lambda: "the machine is busy: test")
    monkeypatch.setattr(native_tuning, "_busy_results", {})
    path = str(tmp_path / "tuning.json")
    with pytest.warns(RuntimeWarning, match="busy.*not cached"):
        assert native_tuning.tiles_limits("float32", 2, path=path) == (64, 0)
    assert not (tmp_path / "tuning.json").exists()
    assert native_tuning.tiles_limits("float32", 2, path=path) == (64, 0)
    assert len(calls) == 1                     # kept for this process, not measured again
