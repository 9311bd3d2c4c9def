"""Ctrl-C during fit: stop at the next minibatch boundary, leave the model usable, then
raise KeyboardInterrupt. While a fit runs (in the main thread), SIGINT only sets a flag:
the native fused epoch polls it between minibatches (csrc/runtime.c), the generic epoch
between its Python steps, and fit raises once its bookkeeping is straight."""
from __future__ import annotations

import contextlib
import signal
import threading

# the native backend's C-level flag (engine/backends/native_backend.py registers it when
# the extension is built); without it a Python-level flag does the same for the other paths
_native = None

_flag = False


def register(hooks):
    """Use `hooks` (requested, clear, install, remove) for SIGINT: a flag that C code
    polls, so that a fused epoch stops at a minibatch boundary too."""
    global _native
    _native = hooks


def requested():
    """Whether Ctrl-C came since the fit began."""
    return _flag or (_native is not None and _native.requested())


def _clear():
    global _flag
    _flag = False
    if _native is not None:
        _native.clear()


@contextlib.contextmanager
def stop_at_boundaries():
    """Inside the block, SIGINT asks for a stop instead of raising (main thread only). A
    stop asked for too late for the block to act on is raised as it ends; either way the
    request is cleared."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _clear()
    if _native is not None:
        _native.install()
        restore = _native.remove
    else:
        def handler(signum, frame):
            global _flag
            _flag = True
        previous = signal.signal(signal.SIGINT, handler)

        def restore():
            signal.signal(signal.SIGINT, previous)
    try:
        yield
    finally:
        restore()
        pending = requested()
        _clear()
    if pending:
        raise KeyboardInterrupt("interrupted (Ctrl-C) as fit ended")
