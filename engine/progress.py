"""The progress bar of long training runs (on stderr): tqdm's, through tqdm.auto, when tqdm
is installed (a widget in Jupyter notebooks, a bar in terminals), else a dependency-free
line-mode bar."""
from __future__ import annotations

import sys
import time


def _tqdm():
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


class ProgressBar:
    """tqdm's bar when tqdm is installed and no stream is given; otherwise one line redrawn
    on a terminal, or occasional lines to a pipe or log."""

    def __init__(self, total, desc="", stream=None, enabled=True, width=24):
        self.total, self.desc, self.width = total, desc, width
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.perf_counter()
        self.done = 0
        self._last_line = -1
        tqdm = _tqdm() if enabled and stream is None else None
        self._tqdm = None if tqdm is None else tqdm(total=total, desc=desc, unit="epoch",
                                                     file=sys.stderr, leave=True)

    def update(self, n=1, info=""):
        self.done += n
        if not self.enabled:
            return
        if self._tqdm is not None:
            if info:
                self._tqdm.set_postfix_str(info, refresh=False)
            self._tqdm.update(n)
            if self.done >= self.total:
                self._tqdm.close()
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
