"""Atomic file writes: a reader sees the old file or the new one, never half of one."""
from __future__ import annotations

import glob
import os
import stat
import tempfile
import time

# temporary files of an interrupted write older than this are removed by the next write
STALE_SECONDS = 3600


def atomic_write_bytes(path, data: bytes):
    """Write data to path through a temporary file in the same folder and a rename.

    A symlink at path stays a symlink (its target is written); an existing file keeps its
    permission bits; temporary files that a killed writer left beside the file more than
    an hour ago are cleaned up."""
    path = os.path.realpath(os.fspath(path))      # write through symlinks, not over them
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    prefix = "." + os.path.basename(path) + "."
    _remove_stale(folder, prefix)
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask                     # mkstemp's 0600 would outlive the rename
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=".tmp")
    try:
        os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _remove_stale(folder, prefix):
    cutoff = time.time() - STALE_SECONDS
    for leftover in glob.glob(os.path.join(glob.escape(folder), glob.escape(prefix) + "*.tmp")):
        try:
            if os.stat(leftover).st_mtime < cutoff:
                os.unlink(leftover)
        except OSError:
            pass
