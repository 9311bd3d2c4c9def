"""Backend registry: names, availability with reasons, and the `auto` choice."""
from __future__ import annotations

import importlib
import os
import warnings
from dataclasses import dataclass

from .base import Backend, Network, Workspace  # noqa: F401

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
    """Every registered backend with whether it can run here, and why (not)."""
    return [_probe(name) for name in _REGISTRY]


def runnable_backends():
    """Names of the backends that can run real workloads here (not the CUDA simulator)."""
    return [b.name for b in available_backends()
            if b.available and not (b.name == "cuda" and _cuda_simulated())]


def get_backend(name: str = "auto") -> Backend:
    """The backend called `name` ("numpy", "native", "cuda" or "auto")."""
    if not isinstance(name, str):
        if isinstance(name, Backend):
            return name
        raise TypeError(f"backend must be a name (str), got {type(name).__name__}")
    if name == "auto":
        return _get_auto()
    if name not in _REGISTRY:
        raise ValueError(f"unknown backend {name!r}; expected one of "
                         f"{', '.join(('auto',) + tuple(_REGISTRY))}")
    if name not in _instances:
        info = _probe(name)
        if not info.available:
            raise RuntimeError(f"backend {name!r} is not available: {info.reason}")
        _instances[name] = _load_class(name)()
    return _instances[name]


def _cuda_simulated():
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "") not in ("", "0")


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
