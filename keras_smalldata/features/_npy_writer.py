"""`NpyAppender`: writes a `.npy` file row block by row block, in bounded memory."""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import socket
from pathlib import Path

import numpy as np

_TMP_SUFFIX = ".tmp"


def temp_name(final: Path) -> Path:
    """A temporary name beside ``final`` that says which process writes it.

    The host name and process id in the name let a later run remove the
    leftovers of a process that was killed, without touching the files of a
    process that is still writing.
    """
    host = socket.gethostname().replace(".", "_") or "host"
    token = secrets.token_hex(4)
    return final.parent / f".{final.name}.{host}.{os.getpid()}.{token}{_TMP_SUFFIX}"


def is_orphan_temp(path: Path) -> bool:
    """True for a temporary file of ours whose writing process is gone (same host only)."""
    name = path.name
    if not (name.startswith(".") and name.endswith(_TMP_SUFFIX)):
        return False
    parts = name[: -len(_TMP_SUFFIX)].split(".")
    if len(parts) < 4 or not parts[-2].isdigit():
        return False
    host, pid = parts[-3], int(parts[-2])
    if host != (socket.gethostname().replace(".", "_") or "host"):
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OSError):
        return False
    return False


def _header_bytes(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer,
        {
            "descr": np.lib.format.dtype_to_descr(dtype),
            "fortran_order": False,
            "shape": tuple(int(d) for d in shape),
        },
    )
    return buffer.getvalue()


class NpyAppender:
    """Writes a C-ordered `.npy` file whose first axis grows as rows arrive.

    Rows are appended with plain file writes, so the process never holds
    more than the block it is given: the page cache, not the process,
    keeps the data (a writable memory map would instead keep every written
    page in the process's resident memory until it is closed). The header
    is written first with a row count of 0; NumPy pads every header so the
    first axis can grow to 21 digits in place, which `finish` uses to write
    the real count without moving the data.

    The file is written under a temporary name; `finish` returns that
    name and the caller renames it into place. A SHA-256 of the data bytes
    is computed on the way.
    """

    def __init__(self, final_path: Path):
        self.final_path = Path(final_path)
        self.temp_path = temp_name(self.final_path)
        self._file = open(self.temp_path, "xb")
        self._row_shape: tuple[int, ...] | None = None
        self._dtype: np.dtype | None = None
        self._header_length = 0
        self._digest = hashlib.sha256()
        self.count = 0

    @property
    def row_shape(self) -> tuple[int, ...] | None:
        return self._row_shape

    @property
    def dtype(self) -> np.dtype | None:
        return self._dtype

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def append(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows)
        if self._dtype is None:
            self._row_shape = tuple(int(d) for d in rows.shape[1:])
            self._dtype = rows.dtype
            header = _header_bytes((0,) + self._row_shape, self._dtype)
            self._header_length = len(header)
            self._file.write(header)
        elif rows.shape[1:] != self._row_shape or rows.dtype != self._dtype:
            raise ValueError(
                f"Rows of shape {rows.shape[1:]} and dtype {rows.dtype} cannot follow "
                f"rows of shape {self._row_shape} and dtype {self._dtype}: every batch "
                "must give the same per-sample shape and dtype."
            )
        data = rows.data.cast("B")
        self._file.write(data)
        self._digest.update(data)
        self.count += int(rows.shape[0])

    def finish(self) -> Path:
        """Writes the final header, flushes to disk and closes; returns the temp path."""
        if self._dtype is None or self._row_shape is None:  # both set by the first rows
            raise ValueError("No rows were written.")
        header = _header_bytes((self.count,) + self._row_shape, self._dtype)
        if len(header) != self._header_length:  # pragma: no cover - NumPy guarantees room
            raise RuntimeError("The .npy header grew; cannot rewrite it in place.")
        self._file.flush()
        self._file.seek(0)
        self._file.write(header)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        return self.temp_path

    def discard(self) -> None:
        """Closes and removes the temporary file (after an error or an interruption)."""
        try:
            self._file.close()
        except OSError:
            pass  # a full disk fails the last flush too: the file goes anyway
        try:
            os.remove(self.temp_path)
        except FileNotFoundError:
            pass


def data_sha256(path: Path, chunk_size: int = 1 << 22) -> tuple[str, int]:
    """SHA-256 of the data part of a `.npy` file and the data offset, read in chunks."""
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            np.lib.format.read_array_header_1_0(handle)
        else:
            np.lib.format.read_array_header_2_0(handle)
        offset = handle.tell()
        digest = hashlib.sha256()
        while True:
            block = handle.read(chunk_size)
            if not block:
                break
            digest.update(block)
    return digest.hexdigest(), offset
