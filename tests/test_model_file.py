"""Model files you can trust: a checksum, shapes checked before anything is allocated,
one error type that names the file, old formats still readable."""
import io
import json
import time

import numpy as np
import pytest

import engine
from engine import MLP, ModelFileError


@pytest.fixture
def saved(tmp_path):
    model = MLP([6, 5, 3], backend="numpy", dtype="float64", seed=3)
    X = np.random.default_rng(0).normal(size=(20, 6))
    model.fit(X, np.arange(20) % 3, epochs=1, optimizer="adam", progress=False)
    path = tmp_path / "model.npz"
    model.save(path)
    return model, path


def _rewrite(path, **changes):
    """Write the file again with some arrays (or the meta dict) replaced."""
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(bytes(arrays["meta"]).decode())
    meta.update(changes.pop("meta", {}))
    arrays.update(changes)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path.write_bytes(buf.getvalue())


def test_round_trip_and_the_error_type(saved):
    model, path = saved
    loaded = MLP.load(path, backend="numpy")
    for a, b in zip(loaded.weights, model.weights):
        np.testing.assert_array_equal(a, b)
    assert issubclass(ModelFileError, ValueError) and engine.ModelFileError is ModelFileError


def test_truncated_and_garbled_files_name_the_file(saved, tmp_path):
    _, path = saved
    data = path.read_bytes()
    for cut in (0, 10, len(data) // 2, len(data) - 5):
        bad = tmp_path / f"cut{cut}.npz"
        bad.write_bytes(data[:cut])
        with pytest.raises(ModelFileError, match=str(bad.name)):
            MLP.load(bad)
    with pytest.raises(ModelFileError, match="no such file"):
        MLP.load(tmp_path / "absent.npz")


def test_a_changed_weight_fails_the_checksum(saved):
    _, path = saved
    with np.load(path) as f:
        w = f["W0"].copy()
    w[0, 0] += 1e-9
    _rewrite(path, W0=w)
    with pytest.raises(ModelFileError, match="checksum"):
        MLP.load(path)


def test_flipped_bytes_never_load_as_other_weights(saved, tmp_path):
    model, path = saved
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(1)
    refused = 0
    for k in range(40):
        bad = tmp_path / f"flip{k}.npz"
        flipped = bytearray(data)
        i = int(rng.integers(0, len(flipped)))
        flipped[i] ^= 1 << int(rng.integers(0, 8))
        bad.write_bytes(bytes(flipped))
        try:
            loaded = MLP.load(bad, backend="numpy")
        except ModelFileError:
            refused += 1
            continue
        # a flip in a zip timestamp or padding may be harmless; then nothing changed
        for a, b in zip(loaded.weights + loaded.biases, model.weights + model.biases):
            np.testing.assert_array_equal(a, b)
    assert refused > 20


@pytest.mark.parametrize("meta,match", [
    ({"layer_sizes": [20000, 20000, 4]}, "has shape"),
    ({"layer_sizes": [10 ** 9, 16, 4]}, "layer_sizes must be"),
    ({"layer_sizes": [60000, 60000, 60000]}, "parameters"),
    ({"seed": "one"}, "'seed'"),
    ({"layer_sizes": "784-10"}, "'layer_sizes'"),
    ({"format_version": 99}, "format_version"),
])
def test_bad_metadata_fails_fast_without_allocating(saved, meta, match):
    _, path = saved
    _rewrite(path, meta=meta)
    t0 = time.perf_counter()
    with pytest.raises(ModelFileError, match=match):
        MLP.load(path)
    assert time.perf_counter() - t0 < 2.0


def test_format_one_files_load_only_when_asked_unverified(saved, tmp_path):
    model, _ = saved
    meta = {"format_version": 1, "layer_sizes": [6, 5, 3], "hidden_activation": "sigmoid",
            "output_activation": "softmax", "loss": "cross_entropy", "dtype": "float64",
            "seed": 3, "init": "normal", "init_scale": 0.1}
    arrays = {"meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)}
    for l, (w, b) in enumerate(zip(model.weights, model.biases)):
        arrays[f"W{l}"], arrays[f"b{l}"] = w, b
    path = tmp_path / "v1.npz"
    np.savez(path, **arrays)
    with pytest.raises(ModelFileError, match="verify=False"):
        MLP.load(path)
    with pytest.warns(engine.model_file.UnverifiedModelWarning, match="without verification"):
        loaded = MLP.load(path, verify=False)
    np.testing.assert_array_equal(loaded.weights[0], model.weights[0])
    loaded.save(tmp_path / "v4.npz")                    # saved again: format 4, verified
    MLP.load(tmp_path / "v4.npz")


def test_values_beyond_float32_are_refused():
    model = MLP([3, 2], backend="numpy", dtype="float32")
    with pytest.raises(ValueError, match="overflow float32"):
        model.set_weights([np.full((2, 3), 1e39)], [np.zeros(2)])
    with pytest.raises(ValueError, match="overflow float32"):
        MLP([3, 2], dtype="float32", backend="numpy", init_scale=1e300)
    MLP([3, 2], dtype="float64", backend="numpy", init_scale=1e300)      # fits in float64


def _rewrite_keeping_digest(path, **meta):
    """Edit metadata fields and nothing else: the digest stored in the file stays."""
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    m = json.loads(bytes(arrays["meta"]).decode())
    m.update(meta)
    arrays["meta"] = np.frombuffer(json.dumps(m).encode(), dtype=np.uint8)
    np.savez(path, **arrays)


@pytest.mark.parametrize("meta", [{"hidden_activation": "tanh"}, {"loss": "mse"},
                                  {"seed": 4}, {"init_scale": 0.2}])
def test_edited_metadata_fails_the_checksum(saved, meta):
    _, path = saved
    _rewrite_keeping_digest(path, **meta)
    with pytest.raises(ModelFileError, match="checksum"):
        MLP.load(path)


def test_a_format_version_edited_down_does_not_skip_the_checksum(saved):
    _, path = saved
    with np.load(path) as f:
        w = f["W0"].copy()
    w[0, 0] += 1.0
    for version in (1, 2, 3):
        _rewrite(path, W0=w, meta={"format_version": version})
        with pytest.raises(ModelFileError, match="verify=False"):
            MLP.load(path)


@pytest.mark.parametrize("field,value,match", [
    ("checkpoint", {"epochs_done": -5}, "epochs_done"),
    ("optimizer", {"name": "adam", "t": -1, "samples": 0}, "optimizer.t"),
    ("hidden_activation", "swish", "hidden_activation"),
    ("dtype", "int8", "dtype"),
    ("init_scale", -1.0, "init_scale")])
def test_fields_out_of_range_are_refused_even_unverified(saved, field, value, match):
    _, path = saved
    _rewrite(path, meta={field: value, "format_version": 3})
    with pytest.raises(ModelFileError, match=match):
        with pytest.warns(engine.model_file.UnverifiedModelWarning):
            MLP.load(path, verify=False)


def test_a_zip_bomb_member_is_refused_before_it_is_unpacked(saved, tmp_path):
    """A member whose header declares 2 GiB (2^28 int64), 64 MiB of zeros deflated into a
    file of a few hundred kilobytes: refused at once, before anything is unpacked."""
    import zipfile
    _, path = saved
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(bomb, "w") as dst:
        for info in src.infolist():
            if info.filename != "order.npy":
                dst.writestr(info, src.read(info))
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            header, {"descr": "<i8", "fortran_order": False, "shape": (2 ** 28,)})
        member = zipfile.ZipInfo("order.npy")
        member.compress_type = zipfile.ZIP_DEFLATED
        with dst.open(member, "w", force_zip64=True) as f:
            f.write(header.getvalue())
            for _ in range(4):
                f.write(bytes(1 << 24))
    assert bomb.stat().st_size < 1 << 20
    t0 = time.perf_counter()
    with pytest.raises(ModelFileError, match="declares .* more than the whole file"):
        MLP.load(bomb)
    assert time.perf_counter() - t0 < 2.0


def test_a_non_model_npz_gets_no_advice_about_pickles(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, meta=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ModelFileError) as info:
        MLP.load(path)
    assert "allow_pickle" not in str(info.value) and "pickled objects" in str(info.value)
    np.savez(path, x=np.arange(3))
    with pytest.raises(ModelFileError, match="no 'meta' entry"):
        MLP.load(path)


def test_a_cut_off_file_is_refused_and_left_closed(saved, tmp_path):
    """np.load leaves the file it opened open when the zip archive is cut off; the loader
    keeps its own handle, closed as the error leaves it."""
    import os
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("counts open files in /proc/self/fd (Linux)")
    _, path = saved
    cut = tmp_path / "cut.npz"
    cut.write_bytes(path.read_bytes()[:300])
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(ModelFileError, match="BadZipFile") as refused:
        MLP.load(cut)
    assert len(os.listdir("/proc/self/fd")) == before, refused.value
