"""`save_history` / `load_history`: training histories as JSON (and CSVLogger CSV)."""

from __future__ import annotations

import csv
import io
import json
import math
import numbers
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from keras_smalldata._files import atomic_write_text

if TYPE_CHECKING:
    import keras

_MISSING_CELLS = ("", "na", "nan", "none", "null")
_SEPARATORS = (",", ";", "\t", "|")


def save_history(
    history: keras.callbacks.History | Mapping[str, list], path: str | os.PathLike
) -> Path:
    """Saves a training history to a JSON file.

    The file holds one JSON object, ``{"loss": [...], "val_loss": [...]}``,
    as ``json.dump(history.history, f)`` would write it, but safe with NumPy
    values; NaN and infinite values are written as ``null``. The write is
    atomic, and replaces an existing file.

    Args:
        history: The `History` returned by ``fit``, or its
            ``history.history`` dict (metric name -> list of values).
        path: Where to write, usually ending in ``.json``. The folder must
            exist.

    Returns:
        The path written, as a `pathlib.Path`.

    Raises:
        TypeError: If ``history`` is not a History or a dict of lists of
            numbers.
        ValueError: If ``path`` ends in ``.csv`` or is a folder.
        FileNotFoundError: If the folder of ``path`` does not exist.

    Example:

    ```python
    history = model.fit(x, y, validation_split=0.2, epochs=10)
    save_history(history, "history.json")
    history_dict = load_history("history.json")
    ```
    """
    data = _history_mapping(history)
    target = Path(os.fspath(path)).expanduser()
    if target.suffix.lower() in (".csv", ".tsv"):
        raise ValueError(
            f"save_history writes JSON; received path={os.fspath(path)!r}. Use a "
            "'.json' file name (keras.callbacks.CSVLogger writes CSV during "
            "training, and load_history reads both)."
        )
    if target.is_dir():
        raise ValueError(
            f"`path` must be a file name, but {str(target)!r} is a folder. "
            "Use for example path='history.json'."
        )
    if not target.parent.is_dir():
        raise FileNotFoundError(
            f"The folder {str(target.parent)!r} of path={os.fspath(path)!r} does "
            "not exist. Create it first."
        )
    lines = []
    for key, values in data.items():
        try:
            encoded = json.dumps(_json_ready(values), allow_nan=False)
        except (TypeError, ValueError) as error:
            raise TypeError(
                f"history[{key!r}] must be a list of numbers; it could not be "
                f"saved as JSON ({error})."
            ) from None
        lines.append(f"  {json.dumps(key)}: {encoded}")
    text = "{\n" + ",\n".join(lines) + ("\n}\n" if lines else "}\n")
    atomic_write_text(target, text)
    return target


def load_history(
    path: str | os.PathLike, *, separator: str | None = None
) -> dict[str, list]:
    """Reads a training history saved as JSON or by Keras' `CSVLogger`.

    JSON files are those of `save_history` or of
    ``json.dump(history.history)`` (``null`` and ``NaN`` read back as NaN).
    CSV files are those of ``keras.callbacks.CSVLogger``: the ``epoch``
    column is dropped and ``NA`` or empty cells become NaN. The format is
    recognised from the content, not the file name. A file that is not a
    history is refused rather than half read.

    Args:
        path: The JSON or CSV file.
        separator: The CSV separator. None (the default) detects it from
            the header line.

    Returns:
        A dict, metric name -> list of values, like ``history.history``.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If the file is not a history JSON object nor a CSV table
            of numbers with a header line, names a key twice, or holds
            ``epoch`` numbers that repeat or go back (two runs in one
            ``CSVLogger(append=True)`` file).

    Example:

    ```python
    logger = keras.callbacks.CSVLogger("training.csv")
    model.fit(x, y, validation_split=0.2, epochs=10, callbacks=[logger])
    load_history("training.csv")["val_loss"]
    ```
    """
    source = Path(os.fspath(path)).expanduser()
    if not source.is_file():
        raise FileNotFoundError(
            f"No history file at path={os.fspath(path)!r}"
            + (" (it is a folder)." if source.is_dir() else ".")
        )
    try:
        text = source.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(
            f"{str(source)!r} is not a text file; a history is a JSON file (from "
            "save_history) or a CSV file (from keras.callbacks.CSVLogger)."
        ) from None
    if not text.strip():
        raise ValueError(f"The history file {str(source)!r} is empty.")
    try:
        return _read_history(text, source, separator)
    except RecursionError:
        # Python's JSON parser, and the reading of nested lists, recurse once per level.
        raise ValueError(
            f"{str(source)!r} holds JSON nested too deeply to be a history (about "
            f"{sys.getrecursionlimit()} levels of lists or objects or more). `path` must "
            "be a history file: a JSON object of metric name -> list of numbers, "
            'e.g. {"loss": [0.7, 0.5], "val_loss": [0.6, 0.55]} (from save_history), '
            "or a CSV file from keras.callbacks.CSVLogger."
        ) from None


def _read_history(text: str, source: Path, separator) -> dict[str, list]:
    try:
        data = json.loads(text, object_pairs_hook=_refuse_duplicate_keys)
    except _DuplicateKeyError as error:
        raise ValueError(
            f"{str(source)!r} has the key {error.args[0]!r} more than once; each "
            "metric must have one list of values."
        ) from None
    except json.JSONDecodeError as error:
        if text.lstrip().startswith(("{", "[")):
            raise ValueError(f"{str(source)!r} is not valid JSON: {error}.") from None
        return _parse_csv_history(text, source, separator)
    return _json_history(data, source)


def history_as_dict(
    history: keras.callbacks.History | Mapping[str, list] | str | os.PathLike,
) -> dict[str, list]:
    """A History, a history dict or a path to a saved history, as a dict of lists.

    Args:
        history: A `keras.callbacks.History`, a `history.history` dict, or a
            path to a file `load_history` reads.

    Returns:
        A new dict, metric name -> list of values.
    """
    if isinstance(history, (str, os.PathLike)):
        return load_history(history)
    return {key: list(values) for key, values in _history_mapping(history).items()}


def _history_mapping(history) -> Mapping:
    """The `{name: values}` mapping inside `history`, checked."""
    data = getattr(history, "history", history)
    if not isinstance(data, Mapping):
        raise TypeError(
            "`history` must be the History returned by `fit`, its "
            "`history.history` dict, or (where a path is accepted) a path to a "
            f"saved history. Received: {history!r} of type {type(history).__name__}."
        )
    for key, values in data.items():
        if not isinstance(key, str):
            raise TypeError(
                f"History keys must be metric names (strings). Received key {key!r}."
            )
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise TypeError(
                f"history[{key!r}] must be a list of values, one per epoch. "
                f"Received: {values!r}."
            )
    return data


def _json_ready(value):
    """`value` with NumPy scalars/arrays as Python values and non-finite as None."""
    if value is None:
        return None
    if isinstance(value, (str, bytes, bool, np.bool_)):
        raise TypeError(f"{value!r} is not a number")
    if isinstance(value, np.ndarray):
        return [_json_ready(item) for item in value.tolist()] if value.ndim else _json_ready(value.item())
    if isinstance(value, np.generic):
        return _json_ready(value.item())
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        return [_json_ready(item) for item in value]
    if hasattr(value, "numpy"):  # A backend tensor.
        return _json_ready(np.asarray(value))
    raise TypeError(f"{value!r} of type {type(value).__name__} is not a number")


class _DuplicateKeyError(ValueError):
    pass


def _refuse_duplicate_keys(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKeyError(key)
        seen[key] = value
    return seen


def _from_json(value, where: str):
    """JSON value -> history value: None becomes NaN, numbers floats, lists stay lists."""
    if value is None:
        return math.nan
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, list):
        return [_from_json(item, where) for item in value]
    raise ValueError(f"{where} is {json.dumps(value)}, not a number.")


def _json_history(data, source: Path) -> dict[str, list]:
    if not isinstance(data, dict) or not all(
        isinstance(values, list) for values in data.values()
    ):
        found = type(data).__name__ if not isinstance(data, dict) else "an object of other values"
        raise ValueError(
            f"{str(source)!r} does not hold a training history: expected a JSON "
            'object of lists such as {"loss": [0.69, 0.52], "val_loss": [0.70, 0.61]}, '
            f"found {_JSON_NAMES.get(found, found)}."
        )
    history = {}
    for key, values in data.items():
        history[key] = [
            _from_json(value, f"{str(source)!r}: history[{key!r}][{index}]")
            for index, value in enumerate(values)
        ]
    return history


_JSON_NAMES = {
    "list": "a list (an array) at the top level",
    "str": "a string",
    "float": "a number",
    "int": "a number",
    "bool": "true or false",
    "NoneType": "null",
}


def _detect_separator(header: str) -> str:
    if header.startswith("epoch") and len(header) > len("epoch"):
        candidate = header[len("epoch")]
        if candidate in _SEPARATORS:
            return candidate
    counts = {sep: header.count(sep) for sep in _SEPARATORS}
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] else ","


def _parse_cell(cell: str, where: str):
    stripped = cell.strip()
    if stripped.lower() in _MISSING_CELLS:
        return math.nan
    try:
        return float(stripped)
    except ValueError:
        pass
    unquoted = stripped.strip('"')
    if unquoted.startswith("["):  # CSVLogger writes arrays as "[0.1, 0.2]".
        try:
            return _from_json(json.loads(unquoted.replace("nan", "NaN")), where)
        except (json.JSONDecodeError, ValueError):
            pass
    raise ValueError(f"{where} is {cell!r}, not a number.")


def _parse_csv_history(text: str, source: Path, separator: str | None) -> dict[str, list]:
    header_line = text.splitlines()[0]
    if separator is None:
        separator = _detect_separator(header_line)
    elif not isinstance(separator, str) or len(separator) != 1:
        raise ValueError(
            f"`separator` must be one character such as ',' or None to detect it. "
            f"Received: separator={separator!r}."
        )
    rows = list(csv.reader(io.StringIO(text), delimiter=separator))
    rows = [row for row in rows if row]
    header = [name.strip() for name in rows[0]]
    if len(header) < 2 and "epoch" not in header:
        raise ValueError(
            f"{str(source)!r} is neither a JSON history nor a CSV table with a "
            f"header line (such as CSVLogger's 'epoch,loss,val_loss'). First "
            f"line: {header_line[:80]!r}."
        )
    if "" in header:
        raise ValueError(
            f"{str(source)!r}: column {header.index('') + 1} of the header line has "
            f"no name. Header: {header_line[:80]!r}."
        )
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise ValueError(
            f"{str(source)!r} has the column(s) {duplicates} more than once; "
            "each metric must have one column."
        )
    history: dict[str, list] = {name: [] for name in header if name != "epoch"}
    epochs = []
    for line_number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ValueError(
                f"{str(source)!r}, row {line_number}: expected {len(header)} cells "
                f"({separator.join(header)}), found {len(row)}."
            )
        for name, cell in zip(header, row):
            value = _parse_cell(cell, f"{str(source)!r}, row {line_number}, column {name!r}")
            if name == "epoch":
                epochs.append((line_number, value))
            else:
                history[name].append(value)
    _check_epochs(epochs, source)
    return history


def _check_epochs(epochs, source: Path) -> None:
    """Refuses an `epoch` column that is not whole numbers going up."""
    previous = None
    for line_number, epoch in epochs:
        if not (isinstance(epoch, float) and math.isfinite(epoch) and epoch.is_integer()):
            raise ValueError(
                f"{str(source)!r}, row {line_number}: the epoch {epoch!r} is not a "
                "whole number."
            )
        if previous is not None and epoch <= previous:
            raise ValueError(
                f"{str(source)!r}, row {line_number}: epoch {int(epoch)} comes after "
                f"epoch {int(previous)}. The file holds more than one run (a "
                "CSVLogger(append=True) log of a run resumed from an earlier epoch?); "
                "keep the rows of the run you want and load it again."
            )
        previous = epoch
