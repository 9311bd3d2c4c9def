"""A dependency-free progress bar for long training runs (written to stderr)."""
from __future__ import annotations

import sys
import time


class ProgressBar:
    """Redraws one line on a terminal; prints occasional lines to a pipe or log."""

    def __init__(self, total, desc="", stream=None, enabled=True, width=24):
        self.total, self.desc, self.width = total, desc, width
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.perf_counter()
        self.done = 0
        self._last_line = -1

    def update(self, n=1, info=""):
        self.done += n
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        filled = int(self.width * self.done / max(self.total, 1))
        bar = "#" * filled + "." * (self.width - filled)
        line = (f"{self.desc} [{bar}] {self.done}/{self.total} "
                f"{_fmt(elapsed)}<{_fmt(eta)} {info}")
        if self.tty:
            self.stream.write("\r" + line.ljust(100)[:160])
            if self.done >= self.total:
                self.stream.write("\n")
        else:
            # about ten lines per run when not drawing on a terminal
            tenth = self.done * 10 // max(self.total, 1)
            if tenth != self._last_line or self.done >= self.total:
                self._last_line = tenth
                self.stream.write(line + "\n")
        self.stream.flush()


def _fmt(seconds):
    m, s = divmod(int(seconds), 60)
    return f"{m:02d}:{s:02d}"
