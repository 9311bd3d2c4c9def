"""Backend registry: names, availability with reasons, and the `auto` choice."""
from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass

from .base import Backend, Network, Workspace  # noqa: F401
from .cudasim import cuda_simulator_enabled

# name -> "module:Class"; imported lazily so a broken backend cannot break `import engine`.
_REGISTRY = {
    "numpy": "engine.backends.numpy_backend:NumpyBackend",
    "native": "engine.backends.native_backend:NativeBackend",
    "cuda": "engine.backends.cuda_backend:CudaBackend",
}
# `auto` tries these in order and takes the first that is available.
_AUTO_ORDER = ("cuda", "native", "numpy")
_instances: dict = {}


@dataclass(frozen=True)
class BackendInfo:
    name: str
    available: bool
    reason: str


def _load_class(name):
    module, cls = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


def backend_names():
    """The registered backends' names, in the registry's order.

    Returns
    -------
    tuple of str

    Examples
    --------
    >>> import engine
    >>> engine.backend_names()
    ('numpy', 'native', 'cuda')
    """
    return tuple(_REGISTRY)


def _probe(name) -> BackendInfo:
    try:
        cls = _load_class(name)
    except Exception as exc:  # an import failure is a reason, not a crash
        return BackendInfo(name, False, f"cannot import: {type(exc).__name__}: {exc}")
    try:
        ok, reason = cls.availability()
    except Exception as exc:
        ok, reason = False, f"{type(exc).__name__}: {exc}"
    return BackendInfo(name, bool(ok), reason)


def available_backends():
    """Every registered backend with whether it can run here, and why (not).

    Returns
    -------
    list of BackendInfo
        (name, available, reason) per backend; nothing is raised for one that cannot run.

    Examples
    --------
    >>> import engine
    >>> [b.name for b in engine.available_backends()]
    ['numpy', 'native', 'cuda']
    """
    return [_probe(name) for name in _REGISTRY]


def runnable_backends():
    """Names of the backends that can run real workloads here (not the CUDA simulator)."""
    return [b.name for b in available_backends()
            if b.available and not (b.name == "cuda" and _cuda_simulated())]


def get_backend(name="auto", **options) -> Backend:
    """The backend called `name` ("numpy", "native", "cuda" or "auto"), or `name` itself
    when it is already a Backend instance.

    Without options, each name gives one shared instance with its default settings. With
    options (e.g. ``get_backend("native", gemm="tiles", threads=1)``) a new instance is made
    with them, so that one model's settings never reach another's.

    Parameters
    ----------
    name : str or Backend, default="auto"
    **options
        The backend's own settings (native: gemm, threads).

    Returns
    -------
    Backend

    Raises
    ------
    ValueError
        An unknown name.
    RuntimeError
        The backend is not available here (the message says why).
    TypeError
        Options with "auto" or with an instance.

    Examples
    --------
    >>> import engine
    >>> engine.get_backend("numpy").name
    'numpy'
    """
    if isinstance(name, Backend):
        if options:
            raise TypeError("options are for a backend name, not for a Backend instance")
        return name
    if not isinstance(name, str):
        raise TypeError(f"backend must be a name (str) or a Backend; got {type(name).__name__}")
    if name == "auto":
        if options:
            raise TypeError("backend='auto' takes no options; name the backend")
        return _get_auto()
    if name not in _REGISTRY:
        raise ValueError(f"unknown backend {name!r}; expected one of "
                         f"{', '.join(backend_choices())}")
    if options or name not in _instances:
        info = _probe(name)
        if not info.available:
            raise RuntimeError(f"backend {name!r} is not available: {info.reason}")
        backend = _load_class(name)(**options)
        if options:
            return backend
        _instances[name] = backend
    return _instances[name]


def backend_choices():
    """What `backend=` accepts by name: "auto", then every registered backend."""
    return ("auto",) + backend_names()


def _cuda_simulated():
    return cuda_simulator_enabled()


# `auto` takes the GPU for networks of at least this many parameters, the CPU below. Why:
# a minibatch step of the cuda backend's fused epoch is 3L + 2 kernel launches (8 for two
# layers; one graph replay where CUDA graphs work), each launch with numba-cuda's Python
# argument handling: ~0.1-0.2 ms of host time
# whatever the network (estimated at 10-20 us a launch; no GPU has measured it yet), while
# the native epoch's step costs about 6 x parameters x batch FLOP at ~100 GFLOP/s on 2 cores
# (measured: 784-100-10, batch 100, 0.25-0.3 ms). They meet somewhere between 30,000 and
# 80,000 parameters at batch 100; 1,000,000 leaves the GPU a wide margin until
# benches/gpu_check.py measures the host cost on a device.
CUDA_MIN_PARAMS = 1_000_000


def auto_choice(sizes, available):
    """(backend name, why) that `auto` picks for a network of layer `sizes`, given the
    names of the backends that can run here."""
    params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    cpu = "native" if "native" in available else "numpy"
    if "cuda" in available:
        if params >= CUDA_MIN_PARAMS:
            return "cuda", (f"{params:,} parameters >= {CUDA_MIN_PARAMS:,}: the GPU's work "
                            f"outgrows its per-step launch cost")
        return cpu, (f"{params:,} parameters < {CUDA_MIN_PARAMS:,}: the GPU would wait on "
                     f"its kernel launches; the CPU is faster")
    return cpu, f"{cpu} is the fastest backend available here"


def backend_for(name, sizes):
    """The backend a model of layer `sizes` runs on: get_backend(name), except that "auto"
    chooses by network size (auto_choice)."""
    if not (isinstance(name, str) and name == "auto"):
        return get_backend(name)
    fallback = _get_auto()                 # the machine's best (warns when it is numpy)
    if fallback.name != "cuda":
        return fallback
    chosen, _ = auto_choice(sizes, runnable_backends())
    return get_backend(chosen)


def _get_auto() -> Backend:
    if "auto" in _instances:
        return _instances["auto"]
    reasons = []
    for name in _AUTO_ORDER:
        info = _probe(name)
        if info.available and name == "cuda" and _cuda_simulated():
            info = BackendInfo(name, False, "only the CUDA simulator is enabled (tests only)")
        if info.available:
            if name == "numpy":
                native = [r for r in reasons if r.startswith("native")]
                warnings.warn("backend='auto' fell back to 'numpy' (" + "; ".join(native) + ")",
                              RuntimeWarning, stacklevel=3)
            backend = get_backend(name)
            _instances["auto"] = backend
            return backend
        reasons.append(f"{name}: {info.reason}")
    raise RuntimeError("no backend is available: " + "; ".join(reasons))
