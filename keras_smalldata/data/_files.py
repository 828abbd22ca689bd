"""Picture files as the Keras loader sees them: extensions, natural order, tables.

Writing files goes through `keras_smalldata._files` (atomic writes).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path

# The extensions `keras.utils.image_dataset_from_directory` accepts
# (keras/src/utils/image_dataset_utils.py, ALLOWLIST_FORMATS).
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")

_NUMBER_RUN = re.compile(r"(\d+)")


def natural_key(name: str):
    """Sort key that orders ``cat.2.jpg`` before ``cat.10.jpg``."""
    return [
        (0, int(part), "") if part.isdigit() else (1, 0, part.lower())
        for part in _NUMBER_RUN.split(name)
        if part
    ]


def is_image_name(path: Path | str) -> bool:
    """True when the loader would pick the file up, by its extension."""
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def same_bytes(a: Path, b: Path, chunk_size: int = 1 << 20) -> bool:
    """True when the two files hold exactly the same bytes."""
    if a.stat().st_size != b.stat().st_size:
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            block_a = fa.read(chunk_size)
            if block_a != fb.read(chunk_size):
                return False
            if not block_a:
                return True


def format_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Formats rows as a plain-text table with aligned columns."""
    cells = [list(header)] + [[str(value) for value in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row):
        return "  ".join(
            value.rjust(width) if value.replace(",", "").isdigit() else value.ljust(width)
            for value, width in zip(row, widths)
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(cells[0]), rule] + [line(row) for row in cells[1:]])


# What an entry of a folder is, as the Keras loader meets it.
REGULAR = "file"
FOLDER = "folder"
BROKEN_LINK = "broken link"
SPECIAL = "special"


def entry_kind(path: Path) -> tuple[str, str]:
    """``(kind, detail)`` of a folder entry, without opening it.

    ``kind`` is `REGULAR` (a regular file, or a link to one), `FOLDER`,
    `BROKEN_LINK` (a link to nothing, or a loop of links) or `SPECIAL` (a
    named pipe, socket or device: reading one can block forever).
    """
    try:
        info = os.stat(path)
    except OSError as error:
        if os.path.islink(path):
            return BROKEN_LINK, f"link to {os.readlink(path)!r}, which does not exist"
        return BROKEN_LINK, f"{type(error).__name__}: {error.strerror}"
    if stat.S_ISREG(info.st_mode):
        return REGULAR, ""
    if stat.S_ISDIR(info.st_mode):
        return FOLDER, ""
    if stat.S_ISFIFO(info.st_mode):
        return SPECIAL, "a named pipe (FIFO)"
    if stat.S_ISSOCK(info.st_mode):
        return SPECIAL, "a socket"
    return SPECIAL, "a device file"


def walk_entries(root: Path) -> tuple[list[Path], list[tuple[Path, OSError]]]:
    """Every entry below ``root`` that is not a folder, and the folders that cannot be read.

    Folders reached through links are followed (the Keras loader reads a
    linked class folder), each real folder once, so a loop of links ends.
    Hidden entries are included: the loader reads ``._cat.1.jpg`` too.

    Returns:
        ``(entries in natural order of their relative paths, [(folder, error)])``.
    """
    entries: list[Path] = []
    errors: list[tuple[Path, OSError]] = []
    seen: set[tuple[int, int]] = set()
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            info = os.stat(folder)
            if (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
            with os.scandir(folder) as scan:
                children = list(scan)
        except OSError as error:
            errors.append((folder, error))
            continue
        for child in children:
            path = Path(child.path)
            try:
                is_folder = child.is_dir()  # follows links
            except OSError:
                is_folder = False
            if is_folder:
                pending.append(path)
            else:
                entries.append(path)
    entries.sort(key=lambda p: natural_key(str(p.relative_to(root))))
    errors.sort(key=lambda item: natural_key(str(item[0])))
    return entries, errors


def folder_name_problem(name) -> str | None:
    """Why ``name`` cannot be one class or split folder, or None when it can.

    A folder the Keras loader would not read as one class: a hidden name
    (``.cats``, ``..``), a path (``a/b``), empty or blank, with spaces at
    either end or a dot at the end (Windows drops trailing ones, and
    ``"cat "`` would be a different class from ``"cat"``).
    """
    if not isinstance(name, str):
        return f"it is a {type(name).__name__}, not a string"
    if not name.strip():
        return "it is empty"
    if name.startswith("."):
        return "it starts with '.' (a hidden folder, which the Keras loader skips)"
    if "/" in name or "\\" in name or "\x00" in name:
        return "it contains a path separator"
    if name != name.strip():
        return "it starts or ends with a space"
    if name.endswith("."):
        return "it ends with '.' (which Windows drops from folder names)"
    return None
