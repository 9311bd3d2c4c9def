"""Atomic file writes: a reader sees the old file or the new one, never half of one."""
from __future__ import annotations

import glob
import os
import stat
import tempfile
import time

# temporary files of an interrupted write older than this are removed by the next write
STALE_SECONDS = 3600


class NotARegularFileError(OSError):
    """The path names (or a symlink at it points to) something other than a regular file:
    a device node, a FIFO, a socket or a folder, which a rename would destroy."""


def atomic_write_bytes(path, data: bytes):
    """Write data to path through a temporary file in the same folder and a rename.

    A symlink at path stays a symlink (its target is written); an existing file keeps its
    permission bits; temporary files that a killed writer left beside the file more than
    an hour ago are cleaned up. Only a regular file (or a new one) is written: a path that
    is, or links to, a device node, FIFO, socket or folder raises NotARegularFileError (an
    OSError) and is left as it was (a cache symlinked to /dev/null stays unwritten)."""
    given = os.fspath(path)
    path = os.path.realpath(given)                # write through symlinks, not over them
    try:
        info = os.stat(path)
    except FileNotFoundError:
        info = None
    if info is not None and not stat.S_ISREG(info.st_mode):
        where = "" if given == path else f" at {path}"
        raise NotARegularFileError(f"{given}: not a regular file ({_kind(info.st_mode)}{where});"
                                   f" refusing to replace it")
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


def _kind(mode):
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def is_regular_file(path):
    """Whether path (through symlinks) is an existing regular file: what a reader may open
    without blocking on a FIFO or reading a device."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _remove_stale(folder, prefix):
    cutoff = time.time() - STALE_SECONDS
    for leftover in glob.glob(os.path.join(glob.escape(folder), glob.escape(prefix) + "*.tmp")):
        try:
            if os.stat(leftover).st_mtime < cutoff:
                os.unlink(leftover)
        except OSError:
            pass
