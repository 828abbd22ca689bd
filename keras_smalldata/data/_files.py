"""Picture files as the Keras loader sees them: extensions, natural order, tables.

Writing files goes through `keras_smalldata._files` (atomic writes).
"""

from __future__ import annotations

import re
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



def format_table(header: list[str], rows: list[list[object]]) -> str:
    """Formats rows as a plain-text table with aligned columns."""
    cells = [header] + [[str(value) for value in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row):
        return "  ".join(
            value.rjust(width) if value.replace(",", "").isdigit() else value.ljust(width)
            for value, width in zip(row, widths)
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(cells[0]), rule] + [line(row) for row in cells[1:]])
