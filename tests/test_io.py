"""engine.io's atomic writer: it writes regular files only, through symlinks, and never
replaces a FIFO, a socket or a folder (the same check refuses device nodes; no test here
touches a real one)."""
import os
import socket
import stat

import pytest

from engine.io import NotARegularFileError, atomic_write_bytes, is_regular_file


def test_a_fifo_and_a_symlink_to_it_are_refused_and_left_alone(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "model.npz"
    link.symlink_to(fifo)
    for path in (fifo, link):
        with pytest.raises(NotARegularFileError, match="FIFO"):
            atomic_write_bytes(path, b"data")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and link.is_symlink()
    assert not is_regular_file(link)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz", "pipe"]  # no temp left


def test_a_folder_and_a_socket_are_refused(tmp_path):
    (tmp_path / "dir").mkdir()
    with pytest.raises(NotARegularFileError, match="folder"):
        atomic_write_bytes(tmp_path / "dir", b"x")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(tmp_path / "s"))
        with pytest.raises(NotARegularFileError, match="socket"):
            atomic_write_bytes(tmp_path / "s", b"x")
    finally:
        sock.close()


def test_the_error_is_an_oserror_naming_the_path(tmp_path):
    os.mkfifo(tmp_path / "p")
    (tmp_path / "cache.json").symlink_to(tmp_path / "p")
    with pytest.raises(OSError) as info:
        atomic_write_bytes(tmp_path / "cache.json", b"{}")
    assert "cache.json" in str(info.value) and "refusing" in str(info.value)


def test_regular_files_and_new_files_are_still_written(tmp_path):
    target = tmp_path / "real.json"
    target.write_bytes(b"old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    atomic_write_bytes(link, b"new")
    assert target.read_bytes() == b"new" and link.is_symlink()
    atomic_write_bytes(tmp_path / "sub" / "new.json", b"fresh")
    assert (tmp_path / "sub" / "new.json").read_bytes() == b"fresh"
