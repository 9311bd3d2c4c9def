"""Ctrl-C during fit: stop at the next minibatch boundary, leave the model usable, then
raise KeyboardInterrupt. While a fit runs (in the main thread), SIGINT only sets a flag:
the native fused epoch polls it between minibatches (csrc/runtime.c), the generic epoch
between its Python steps, and fit raises once its bookkeeping is straight."""
from __future__ import annotations

import contextlib
import signal
import threading

try:
    from . import _native
except ImportError:     # not built: a Python-level flag does the same for the other paths
    _native = None

_flag = False


def requested():
    """Whether Ctrl-C came since the fit began."""
    return _flag or (_native is not None and _native.stop_requested())


def _clear():
    global _flag
    _flag = False
    if _native is not None:
        _native.clear_stop()


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
        _native.install_interrupt_handler()
        restore = _native.remove_interrupt_handler
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
