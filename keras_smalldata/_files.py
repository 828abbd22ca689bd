"""Writing files so that a reader never sees half of one.

Every file the package writes (cache manifests, verification reports, the demo
dataset's manifest, saved histories, copied pictures) goes through
`atomic_write_bytes` or `atomic_copy`: the content goes to a temporary file in
the same folder, is flushed to disk (``fsync``), gets ordinary permissions
(``0o666`` minus the process umask, as ``open()`` would give, instead of the
``0o600`` of `tempfile.mkstemp`), and is then renamed over the target in one
step. A crash leaves either the old file or the new one, never a mix, and
the temporary file is removed on any error.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_folder(folder: Path) -> None:
    """Makes a rename in ``folder`` durable (best effort: not every OS allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _temporary_beside(target: Path) -> tuple[int, str]:
    return tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")


def _finish(tmp_name: str, target: Path) -> None:
    os.chmod(tmp_name, 0o666 & ~_umask())
    os.replace(tmp_name, target)
    _fsync_folder(target.parent)


def atomic_write_bytes(target: str | os.PathLike, data: bytes) -> Path:
    """Writes ``data`` to ``target`` atomically; returns the target as a Path.

    Args:
        target: The file to write; its folder must exist. An existing file is
            replaced.
        data: The bytes to write.

    Returns:
        ``Path(target)``.
    """
    target = Path(target)
    fd, tmp_name = _temporary_beside(target)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        _finish(tmp_name, target)
    except BaseException:
        if os.path.exists(tmp_name):
            os.remove(tmp_name)
        raise
    return target


def atomic_write_text(target: str | os.PathLike, text: str) -> Path:
    """Writes ``text`` (UTF-8) to ``target`` atomically; see `atomic_write_bytes`."""
    return atomic_write_bytes(target, text.encode("utf-8"))


def atomic_copy(source: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Copies ``source`` to ``target`` atomically, keeping its modification time.

    Returns:
        ``Path(target)``.
    """
    target = Path(target)
    fd, tmp_name = _temporary_beside(target)
    os.close(fd)
    try:
        shutil.copyfile(source, tmp_name)
        shutil.copystat(source, tmp_name)
        with open(tmp_name, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
        _fsync_folder(target.parent)
    except BaseException:
        if os.path.exists(tmp_name):
            os.remove(tmp_name)
        raise
    return target
