"""MNIST loading: the shipped sample, IDX parsing, cache checks, and the offline error."""
import gzip
import os

import numpy as np
import pytest

import engine
from engine import data

from helpers import REAL_CACHE_DIR


def test_sample_is_small_stratified_and_scaled():
    X, y, Xt, yt = engine.load_mnist_sample()
    assert X.shape == (2500, 784) and Xt.shape == (500, 784)
    assert X.dtype == np.float32 and y.dtype == np.int64
    assert np.bincount(y).tolist() == [250] * 10 and np.bincount(yt).tolist() == [50] * 10
    assert X.min() == 0.0 and X.max() == 1.0
    Xs = engine.load_mnist_sample(scale="symmetric", dtype="float64")[0]
    assert Xs.dtype == np.float64 and Xs.min() == -1.0 and Xs.max() == 1.0
    raw = engine.load_mnist_sample(scale="none")[0]
    assert raw.dtype == np.uint8 and raw.max() == 255
    assert os.path.getsize(os.path.join(os.path.dirname(data.__file__), "data",
                                        "mnist_sample.npz")) < 1_000_000


def test_bad_scale_and_dtype():
    with pytest.raises(ValueError, match="scale"):
        engine.load_mnist_sample(scale="zscore")
    with pytest.raises(ValueError, match="dtype"):
        engine.load_mnist_sample(dtype="int8")


def _idx(arr):
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
    return header + arr.tobytes()


def test_parse_idx_plain_and_gzipped():
    imgs = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(data.parse_idx(_idx(imgs)), imgs.reshape(2, 12))
    labels = np.array([3, 1, 4], dtype=np.uint8)
    np.testing.assert_array_equal(data.parse_idx(gzip.compress(_idx(labels))), labels)
    with pytest.raises(data.DataError, match="size does not match"):
        data.parse_idx(_idx(labels)[:-1])
    with pytest.raises(data.DataError, match="not an unsigned-byte IDX"):
        data.parse_idx(b"\x00\x00\x0d\x01" + bytes(8))


def test_offline_with_no_copy_lists_what_was_tried(tmp_path):
    with pytest.raises(data.DataError) as err:
        data.load_mnist_uint8(cache_dir=tmp_path, idx_dir=tmp_path / "nowhere", mirrors=(),
                              use_package_index=False, verbose=False)
    msg = str(err.value)
    assert "no cache at" in msg and "nowhere" in msg and "Tried" in msg


def test_idx_folder_with_wrong_content_is_rejected(tmp_path):
    # well-formed IDX files, but not MNIST: the checksum must refuse them
    for key, stem in data.IDX_FILES.items():
        shape = data.SHAPES[key]
        arr = np.zeros((shape[0], 28, 28) if len(shape) == 2 else shape, dtype=np.uint8)
        (tmp_path / (stem + ".gz")).write_bytes(gzip.compress(_idx(arr), compresslevel=1))
    with pytest.raises(data.DataError, match="checksum"):
        data.load_mnist_uint8(cache_dir=tmp_path / "cache", idx_dir=tmp_path, mirrors=(),
                              use_package_index=False, verbose=False)
    assert not (tmp_path / "cache" / data.CACHE_NAME).exists()


def test_corrupt_cache_is_detected(tmp_path):
    cache = tmp_path / data.CACHE_NAME
    cache.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(data.DataError) as err:
        data.load_mnist_uint8(cache_dir=tmp_path, mirrors=(), use_package_index=False,
                              verbose=False)
    assert "unreadable" in str(err.value)


def test_cache_with_wrong_contents_is_detected(tmp_path):
    cache = tmp_path / data.CACHE_NAME
    fake = {k: np.zeros(s, np.uint8) for k, s in data.SHAPES.items()}
    data._write_cache(cache, fake)
    with pytest.raises(data.DataError, match="checksum"):
        data._from_cache(str(cache))


def test_good_cache_is_used_and_corrupt_cache_is_refetched(tmp_path, monkeypatch):
    """With the real data in a cache: loads it; a corrupted cache is fetched again."""
    real = os.path.join(REAL_CACHE_DIR, data.CACHE_NAME)
    if not os.path.exists(real):
        pytest.skip("the full MNIST cache is not on this machine (CI uses the sample)")
    arrays = data._from_cache(real)
    cache = tmp_path / data.CACHE_NAME
    cache.write_bytes(b"garbage")
    monkeypatch.setattr(data, "_from_package_index", lambda: arrays)
    got = data.load_mnist_uint8(cache_dir=tmp_path, mirrors=(), verbose=False)
    np.testing.assert_array_equal(got["y_test"], arrays["y_test"])
    assert data._from_cache(str(cache))["x_train"].shape == (60000, 784)


def _classic_pickle(rng, n_train=6000, n_valid=1000, n_test=1000):
    """Bytes shaped like the package index's mnist.pkl.gz: float32 pixels k/256."""
    import pickle
    parts = []
    for n in (n_train, n_valid, n_test):
        pixels = rng.integers(0, 256, (n, 784)).astype(np.uint8)
        parts.append((pixels, (pixels.astype(np.float32) / 256, rng.integers(0, 10, n))))
    raw = pickle.dumps(tuple(p[1] for p in parts), protocol=2)
    return gzip.compress(raw, compresslevel=1), [p[0] for p in parts]


def test_pickle_decodes_exactly_without_float64_copies():
    """The first download decodes in blocks: the peak stays near the unpickled float32
    arrays themselves (the real set: about 220 MB of them, where float64 copies of the whole
    set peaked at 1.24 GB)."""
    import tracemalloc
    packed, pixels = _classic_pickle(np.random.default_rng(0))
    floats = sum(p.size * 4 for p in pixels)
    tracemalloc.start()
    arrays = data._arrays_from_pickle(packed)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    np.testing.assert_array_equal(arrays["x_train"], np.concatenate(pixels[:2]))
    np.testing.assert_array_equal(arrays["x_test"], pixels[2])
    assert arrays["x_train"].dtype == np.uint8
    # unpickling itself holds each array's bytes twice for a moment (pickle's bytes, then the
    # array); float64 copies of the whole set, as before, peaked at about 7x the float32 size
    assert peak < 3 * floats, f"peak {peak / 1e6:.1f} MB for {floats / 1e6:.1f} MB of " \
                              f"float32 pixels"


def test_each_failed_source_says_why(tmp_path, capsys):
    with pytest.raises(data.DataError):
        data.load_mnist_uint8(cache_dir=str(tmp_path), mirrors=["http://127.0.0.1:9/"],
                              use_package_index=False, verbose=True)
    err = capsys.readouterr().err
    assert "fetching MNIST from http://127.0.0.1:9/ ... failed:" in err
    line = [l for l in err.splitlines() if "failed:" in l][0]
    assert len(line.split("failed:", 1)[1].strip()) > 3
