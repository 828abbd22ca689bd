"""`make_subsets`: split a folder of labelled pictures into train/validation/test."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keras_smalldata._files import atomic_copy
from keras_smalldata.data._files import (
    format_table,
    is_image_name,
    natural_key,
    same_bytes,
)

_CLASS_IN_NAME = re.compile(r"^(?P<label>.+?)[._\- ]\d+$")
_LAYOUTS = ("auto", "flat", "folders")
_METHODS = ("copy", "hardlink")


def class_from_filename(filename: str) -> str | None:
    """Reads the class from a file name such as ``cat.0.jpg`` or ``dog_12.png``.

    Args:
        filename: A file name (not a path).

    Returns:
        The part before the trailing number (``"cat"``), or None when the name
        does not have the ``<class><sep><number>.<ext>`` form.
    """
    stem = filename.rsplit(".", 1)[0]
    match = _CLASS_IN_NAME.match(stem)
    return match.group("label") if match else None


@dataclass
class SubsetSummary:
    """What `make_subsets` wrote: picture counts per split and class.

    Attributes:
        destination: The folder holding one sub-folder per split.
        counts: ``{split: {class_name: count}}``.
        files: ``{split: {class_name: [paths written]}}``.
    """

    destination: Path
    counts: dict[str, dict[str, int]]
    files: dict[str, dict[str, list[Path]]] = field(repr=False, default_factory=dict)

    @property
    def class_names(self) -> list[str]:
        """The class names, in the order `image_dataset_from_directory` uses."""
        names = {name for per_class in self.counts.values() for name in per_class}
        return sorted(names)

    def total(self, split: str | None = None) -> int:
        """Number of pictures in one split, or in all splits when ``split`` is None."""
        splits = [split] if split is not None else list(self.counts)
        return sum(sum(self.counts[s].values()) for s in splits)

    def __str__(self) -> str:
        classes = self.class_names
        rows = [
            [split] + [f"{self.counts[split].get(c, 0):,}" for c in classes] + [f"{self.total(split):,}"]
            for split in self.counts
        ]
        rows.append(
            ["all"]
            + [f"{sum(self.counts[s].get(c, 0) for s in self.counts):,}" for c in classes]
            + [f"{self.total():,}"]
        )
        table = format_table(["split"] + classes + ["total"], rows)
        return f"Subsets written to {self.destination}\n{table}"


def make_subsets(
    source: str | os.PathLike,
    destination: str | os.PathLike,
    splits: Mapping[str, int | float],
    *,
    classes: list[str] | None = None,
    layout: str = "auto",
    seed: int | None = None,
    method: str = "copy",
    exist_ok: bool = False,
    label_from_filename: Callable[[str], str | None] | None = None,
) -> SubsetSummary:
    """Copies (or hard-links) a stratified train/validation/test subset of pictures.

    Reads pictures from ``source`` in either layout a user meets:

    - ``"flat"``: one folder whose file names carry the class, as in Kaggle's
      dogs-vs-cats archive (``cat.0.jpg``, ``dog.12.jpg``);
    - ``"folders"``: one sub-folder per class (``source/cat/xyz.jpg``).

    and writes ``destination/<split>/<class>/<file>``, the layout that
    `keras.utils.image_dataset_from_directory` reads. The source is never
    modified. Every class gets the same split sizes (stratified).

    Args:
        source: Folder of pictures.
        destination: Folder to write the splits into. Must be empty or absent
            unless ``exist_ok=True``.
        splits: ``{split_name: size}`` in order, e.g.
            ``{"train": 1000, "validation": 500, "test": 500}``. An int is a
            number of pictures per class; a float in (0, 1] is a fraction of
            each class. When fractions add up to 1, every picture is used.
        classes: Class names to keep (default: every class found).
        layout: ``"auto"`` (default), ``"flat"`` or ``"folders"``.
        seed: None keeps file order (natural order: ``cat.2`` before
            ``cat.10``), as the seeds do; an int shuffles each class with
            that seed, deterministically.
        method: ``"copy"`` (default) or ``"hardlink"`` (no extra disk space;
            source and destination must be on the same file system).
        exist_ok: Allows a non-empty ``destination``. Files already there
            with the same bytes are kept; a different file at a path we need
            raises `FileExistsError`. Nothing is ever deleted.
        label_from_filename: For the flat layout, a function from a file name
            to its class (default: the part before the trailing number).

    Returns:
        A `SubsetSummary` with counts per split and class; ``print`` it for
        a table.

    Example:

    ```python
    summary = make_subsets(
        "~/Downloads/dogs-vs-cats/train", "cats_and_dogs_small",
        {"train": 1000, "validation": 500, "test": 500})
    train = keras.utils.image_dataset_from_directory(
        "cats_and_dogs_small/train", image_size=(180, 180))
    ```
    """
    source = Path(source).expanduser()
    destination = Path(destination).expanduser()
    if layout not in _LAYOUTS:
        raise ValueError(f"layout={layout!r} is not supported; use one of {_LAYOUTS}.")
    if method not in _METHODS:
        raise ValueError(f"method={method!r} is not supported; use one of {_METHODS}.")
    if seed is not None and not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be None or an int, got {seed!r}.")
    if not source.is_dir():
        raise FileNotFoundError(f"source={str(source)!r} is not a folder.")
    split_sizes = _validate_splits(splits)
    _check_destination(source, destination, exist_ok)

    by_class = _collect(source, layout, label_from_filename or class_from_filename)
    if classes is not None:
        missing = [c for c in classes if c not in by_class]
        if missing:
            raise ValueError(
                f"classes {missing} not found in {str(source)!r}; "
                f"classes found: {sorted(by_class)}."
            )
        by_class = {c: by_class[c] for c in classes}
    if not by_class:
        raise ValueError(
            f"No pictures with extensions .bmp/.gif/.jpeg/.jpg/.png found in {str(source)!r}."
        )

    plan = _plan(by_class, split_sizes, seed)
    counts: dict[str, dict[str, int]] = {name: {} for name in split_sizes}
    written: dict[str, dict[str, list[Path]]] = {name: {} for name in split_sizes}
    for split_name, per_class in plan.items():
        for class_name, files in per_class.items():
            folder = destination / split_name / class_name
            folder.mkdir(parents=True, exist_ok=True)
            targets = []
            for file in files:
                target = folder / file.name
                _place(file, target, method)
                targets.append(target)
            counts[split_name][class_name] = len(targets)
            written[split_name][class_name] = targets
    return SubsetSummary(destination=destination, counts=counts, files=written)


def _validate_splits(splits) -> dict[str, int | float]:
    if not isinstance(splits, Mapping) or not splits:
        raise TypeError(
            "splits must be a non-empty dict such as "
            f"{{'train': 1000, 'validation': 500}}, got {splits!r}."
        )
    sizes: dict[str, int | float] = {}
    for name, size in splits.items():
        if not isinstance(name, str) or not name or os.sep in name or name in (".", ".."):
            raise ValueError(f"Split name {name!r} is not a usable folder name.")
        if isinstance(size, bool) or not isinstance(size, (int, float, np.integer, np.floating)):
            raise TypeError(f"splits[{name!r}]={size!r}: use an int count or a float fraction.")
        if isinstance(size, (float, np.floating)):
            if not 0 < size <= 1:
                raise ValueError(
                    f"splits[{name!r}]={size!r}: a fraction must be in (0, 1]."
                )
            sizes[name] = float(size)
        else:
            if size < 0:
                raise ValueError(f"splits[{name!r}]={size!r}: a count must be >= 0.")
            sizes[name] = int(size)
    fractions = [v for v in sizes.values() if isinstance(v, float)]
    if sum(fractions) > 1 + 1e-9:
        raise ValueError(f"The fractions in splits add up to {sum(fractions):g}, more than 1.")
    return sizes


def _check_destination(source: Path, destination: Path, exist_ok: bool) -> None:
    src, dst = source.resolve(), destination.resolve()
    if dst == src or src in dst.parents or dst in src.parents:
        raise ValueError(
            f"destination={str(destination)!r} must not be inside source={str(source)!r} "
            "or contain it."
        )
    if destination.exists():
        if not destination.is_dir():
            raise FileExistsError(f"destination={str(destination)!r} exists and is not a folder.")
        if any(destination.iterdir()) and not exist_ok:
            raise FileExistsError(
                f"destination={str(destination)!r} is not empty. Pass exist_ok=True to add "
                "to it (nothing there is deleted), or choose an empty folder."
            )


def _collect(source: Path, layout: str, label_of) -> dict[str, list[Path]]:
    subfolders = sorted(p for p in source.iterdir() if p.is_dir() and not p.name.startswith("."))
    top_images = [p for p in source.iterdir() if p.is_file() and is_image_name(p)]
    if layout == "auto":
        layout = "folders" if subfolders and not top_images else "flat"

    by_class: dict[str, list[Path]] = {}
    if layout == "folders":
        for folder in subfolders:
            files = [p for p in folder.rglob("*") if p.is_file() and is_image_name(p)]
            if files:
                by_class[folder.name] = files
    else:
        unlabelled = []
        for path in top_images:
            label = label_of(path.name)
            if not label:
                unlabelled.append(path.name)
                continue
            by_class.setdefault(label, []).append(path)
        if unlabelled:
            shown = ", ".join(unlabelled[:3])
            raise ValueError(
                f"Cannot read a class from {len(unlabelled)} file name(s) in {str(source)!r} "
                f"(e.g. {shown}). Flat folders need names like 'cat.0.jpg'; pass "
                "label_from_filename=... for another naming scheme, or use one sub-folder "
                "per class."
            )
    for name in by_class:
        by_class[name].sort(key=lambda p: natural_key(str(p.relative_to(source))))
    return dict(sorted(by_class.items()))


def _plan(by_class, split_sizes, seed) -> dict[str, dict[str, list[Path]]]:
    plan: dict[str, dict[str, list[Path]]] = {name: {} for name in split_sizes}
    for class_index, (class_name, files) in enumerate(by_class.items()):
        sizes = _sizes_for_class(len(files), split_sizes)
        needed = sum(sizes.values())
        if needed > len(files):
            asked = ", ".join(f"{k}={v}" for k, v in sizes.items())
            raise ValueError(
                f"Class {class_name!r} has {len(files)} pictures, fewer than the "
                f"{needed} requested ({asked})."
            )
        order = list(files)
        if seed is not None:
            rng = np.random.default_rng([int(seed), class_index])
            order = [order[i] for i in rng.permutation(len(order))]
        start = 0
        for split_name, size in sizes.items():
            plan[split_name][class_name] = order[start : start + size]
            start += size
    return plan


def _sizes_for_class(n: int, split_sizes) -> dict[str, int]:
    counts = {k: v for k, v in split_sizes.items() if isinstance(v, int)}
    fractions = {k: v for k, v in split_sizes.items() if isinstance(v, float)}
    if not fractions:
        return {k: counts[k] for k in split_sizes}
    remaining = n - sum(counts.values())
    exact = {k: f * remaining for k, f in fractions.items()}
    floors = {k: int(np.floor(v + 1e-9)) for k, v in exact.items()}
    if abs(sum(fractions.values()) - 1) < 1e-9:
        # Fractions covering everything: hand out the rounding leftovers so no
        # picture is dropped (largest remainder first, then split order).
        leftover = remaining - sum(floors.values())
        by_remainder = sorted(fractions, key=lambda k: -(exact[k] - floors[k]))
        for k in by_remainder[: max(leftover, 0)]:
            floors[k] += 1
    merged = {**counts, **floors}
    return {k: merged[k] for k in split_sizes}


def _place(source: Path, target: Path, method: str) -> None:
    if target.exists():
        if same_bytes(source, target):
            return
        raise FileExistsError(
            f"{str(target)!r} already exists with different content; it is left as it is. "
            "Use an empty destination."
        )
    if method == "hardlink":
        try:
            os.link(source, target)
        except OSError as error:
            raise OSError(
                f"Cannot hard-link {str(source)!r} to {str(target)!r} ({error}). Hard links "
                "need source and destination on the same file system; use method='copy'."
            ) from error
    else:
        atomic_copy(source, target)
