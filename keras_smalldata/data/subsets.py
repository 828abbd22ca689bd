"""`make_subsets`: split a folder of labelled pictures into train/validation/test."""

from __future__ import annotations

import os
import re
import unicodedata
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keras_smalldata import _arguments as args
from keras_smalldata._files import atomic_copy
from keras_smalldata.data._files import (
    REGULAR,
    entry_kind,
    folder_name_problem,
    format_table,
    is_image_name,
    natural_key,
    same_bytes,
    walk_entries,
)

_CLASS_IN_NAME = re.compile(r"^(?P<label>.+?)[._\- ]\d+$")
_LAYOUTS = ("auto", "flat", "folders")
# Folder names that mean a split, not a class.
_SPLIT_NAMES = ("train", "training", "test", "testing", "val", "valid", "validation", "dev", "eval")
_METHODS = ("copy", "hardlink")


def class_from_filename(filename: str) -> str | None:
    """Reads the class from a file name such as ``cat.0.jpg`` or ``dog_12.png``.

    Args:
        filename: A file name (not a path).

    Returns:
        The part before the trailing number (``"cat"``), in Unicode NFC form
        (so that ``café`` typed on macOS and on Linux is one class), or None
        when the name does not have the ``<class><sep><number>.<ext>`` form
        or when that part cannot be a class folder (``...1.png`` would give
        ``..``; hidden names, names with spaces at either end or a dot at
        the end).
    """
    stem = filename.rsplit(".", 1)[0]
    match = _CLASS_IN_NAME.match(stem)
    if not match:
        return None
    label = unicodedata.normalize("NFC", match.group("label"))
    return None if folder_name_problem(label) else label


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
    classes: Sequence[str] | None = None,
    layout: str = "auto",
    seed: int | None = None,
    method: str = "copy",
    exist_ok: bool = False,
    label_from_filename: Callable[[str], str | None] | None = None,
) -> SubsetSummary:
    """Copies (or hard-links) a stratified train/validation/test subset of pictures.

    Reads ``source`` as one flat folder whose file names carry the class
    (``cat.0.jpg``, as in Kaggle's dogs-vs-cats) or as one sub-folder per
    class, and writes ``destination/<split>/<class>/<file>``, the layout
    `keras.utils.image_dataset_from_directory` reads. Every class gets the
    same split sizes. The source is never modified; everything is checked
    before the first file is written, and a failed write removes what this
    call created.

    Args:
        source: Folder of pictures.
        destination: Folder to write the splits into. Must be empty or absent
            unless ``exist_ok=True``.
        splits: ``{split_name: size}`` in order, e.g.
            ``{"train": 1000, "validation": 500, "test": 500}``. An int is a
            number of pictures per class; a float in (0, 1] is a fraction of
            each class. When fractions add up to 1, every picture is used.
        classes: Class names to keep (default: every class found).
        layout: ``"auto"`` (default), ``"flat"`` or ``"folders"``. ``"auto"``
            refuses a source with pictures both at its top and in
            sub-folders.
        seed: None keeps file order (natural order: ``cat.2`` before
            ``cat.10``), as the seeds do; an int shuffles each class with
            that seed, deterministically.
        method: ``"copy"`` (default) or ``"hardlink"`` (no extra disk space;
            source and destination must be on the same file system).
        exist_ok: Allows a non-empty ``destination``. Files already there
            with the same bytes are kept; a different file at a path we need
            raises `FileExistsError` before anything is written. Nothing is
            ever deleted.
        label_from_filename: For the flat layout, a function from a file name
            to its class, or None for a file without one (default: the part
            before the trailing number, see `class_from_filename`).

    Returns:
        A `SubsetSummary` with counts per split and class; ``print`` it for
        a table.

    Raises:
        FileNotFoundError: When ``source`` is not a folder.
        FileExistsError: For a non-empty ``destination`` without
            ``exist_ok=True``, or a different file at a path it needs.
        ValueError: For a class with fewer pictures than requested, class
            or file names that cannot be folders or clash in case, or bad
            ``splits``.

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
    args.check_choice("layout", layout, _LAYOUTS)
    args.check_choice("method", method, _METHODS)
    args.check_seed(seed)
    args.check_bool("exist_ok", exist_ok)
    if label_from_filename is not None and not callable(label_from_filename):
        raise TypeError(
            "`label_from_filename` must be a function from a file name to its class, "
            f"or None. {args.received('label_from_filename', label_from_filename)}"
        )
    classes = _check_classes(classes)
    if not source.is_dir():
        raise FileNotFoundError(f"source={str(source)!r} is not a folder.")
    split_sizes = _validate_splits(splits)
    _check_destination(source, destination, exist_ok)

    by_class = _collect(source, layout, label_from_filename)
    if classes is not None:
        missing = [c for c in classes if c not in by_class]
        if missing:
            raise ValueError(
                f"classes {missing} not found in {str(source)!r}; "
                f"classes found: {sorted(by_class)}."
            )
        by_class = {c: by_class[c] for c in classes}
    if not any(by_class.values()):
        raise ValueError(
            f"No pictures with extensions .bmp/.gif/.jpeg/.jpg/.png found in {str(source)!r}."
        )
    empty = [name for name, pictures in by_class.items() if not pictures]
    if empty:
        raise ValueError(
            f"The class folder(s) {empty} in {str(source)!r} hold no pictures "
            "(.bmp/.gif/.jpeg/.jpg/.png): the split would have fewer classes than "
            "the source. Pass classes="
            f"{sorted(name for name, pictures in by_class.items() if pictures)!r} to "
            "leave them out."
        )
    _check_no_case_clash(list(by_class), "classes")

    plan = _plan(by_class, split_sizes, seed)
    _check_readable(plan)
    copies = _targets(plan, destination)
    to_write = _check_targets(copies, source, destination, method)
    _write(to_write, destination, method)

    counts: dict[str, dict[str, int]] = {name: {} for name in split_sizes}
    written: dict[str, dict[str, list[Path]]] = {name: {} for name in split_sizes}
    for (split_name, class_name), pairs in copies.items():
        written[split_name][class_name] = [target for _, target in pairs]
        counts[split_name][class_name] = len(pairs)
    return SubsetSummary(destination=destination, counts=counts, files=written)


def _check_classes(classes) -> list[str] | None:
    if classes is None:
        return None
    if isinstance(classes, str) or not isinstance(classes, Sequence):
        raise TypeError(
            "`classes` must be a list of class names, e.g. ['cat', 'dog']. "
            f"{args.received('classes', classes)}"
        )
    names = list(classes)
    if not names or not all(isinstance(name, str) for name in names):
        raise ValueError(
            "`classes` must list at least one class name (strings), e.g. "
            f"['cat', 'dog']. {args.received('classes', classes)}"
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"`classes` names {repeated} more than once. {args.received('classes', classes)}")
    return names


def _validate_splits(splits) -> dict[str, int | float]:
    if not isinstance(splits, Mapping) or not splits:
        raise TypeError(
            "splits must be a non-empty dict such as "
            f"{{'train': 1000, 'validation': 500}}, got {splits!r}."
        )
    sizes: dict[str, int | float] = {}
    for name, size in splits.items():
        problem = folder_name_problem(name)
        if problem:
            raise ValueError(f"Split name {name!r} is not a usable folder name: {problem}.")
        if args.is_integer(size):
            if size < 0:
                raise ValueError(f"splits[{name!r}]={size!r}: a count must be >= 0.")
            sizes[name] = int(size)
        elif args.is_number(size):
            if not 0 < size <= 1:
                raise ValueError(
                    f"splits[{name!r}]={size!r}: a fraction must be in (0, 1]."
                )
            sizes[name] = float(size)
        else:
            raise TypeError(f"splits[{name!r}]={size!r}: use an int count or a float fraction.")
    _check_no_case_clash(list(sizes), "split names")
    fractions = [v for v in sizes.values() if isinstance(v, float)]
    if sum(fractions) > 1 + 1e-9:
        raise ValueError(f"The fractions in splits add up to {sum(fractions):g}, more than 1.")
    return sizes


def _check_no_case_clash(names: list[str], what: str) -> None:
    """Refuses names that are one folder on a case-insensitive disk (macOS, Windows)."""
    by_key: dict[str, list[str]] = {}
    for name in names:
        by_key.setdefault(unicodedata.normalize("NFC", name).casefold(), []).append(name)
    clashes = [group for group in by_key.values() if len(group) > 1]
    if clashes:
        raise ValueError(
            f"The {what} {clashes[0]} differ only in upper/lower case: on macOS and "
            "Windows they are one folder, and the Keras loader would read them as "
            "one class there and two classes here. Rename them, or pass "
            "label_from_filename=... to map them to one name."
        )


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


def _collect(source: Path, layout: str, label_of) -> dict[str, list[tuple[Path, Path]]]:
    """{class: [(picture, path below the class folder)]} in natural order.

    Hidden entries (``._cat.1.jpg``, ``.cache/``) are left out, and so are
    links to nothing, named pipes and other entries that are not files, with
    a warning for those with a picture name. A class folder without pictures
    is an empty list.
    """
    entries = sorted(source.iterdir(), key=lambda p: natural_key(p.name))
    visible = [p for p in entries if not p.name.startswith(".")]
    subfolders = [p for p in visible if p.is_dir()]
    left_out: list[str] = []
    top_images = _regular_files(
        [p for p in visible if not p.is_dir() and is_image_name(p)], left_out
    )
    if layout == "auto":
        filled = [f for f in subfolders if _pictures_below(f)]
        if filled and top_images:
            raise ValueError(
                f"{str(source)!r} holds pictures both at its top ({top_images[0].name}...) "
                f"and in sub-folders ({', '.join(f.name for f in filled[:3])}): it is not "
                "clear whether the class comes from the file names or from the folders. "
                "Pass layout='flat' (the sub-folders are ignored) or layout='folders' "
                "(the top-level pictures are ignored)."
            )
        layout = "folders" if filled or not top_images else "flat"

    by_class: dict[str, list[tuple[Path, Path]]] = {}
    if layout == "folders":
        for folder in subfolders:
            pictures = _regular_files(_pictures_below(folder, left_out), left_out)
            by_class[folder.name] = [(p, p.relative_to(folder)) for p in pictures]
        _check_not_split_folders(source, by_class)
        _warn_left_out(left_out)
        return by_class
    left_out += [
        f"{str(p)!r} (hidden)" for p in entries if p.name.startswith(".") and is_image_name(p)
    ]
    _warn_left_out(left_out)
    label_of = label_of or class_from_filename
    unlabelled, bad_labels = [], []
    for path in top_images:
        label = label_of(path.name)
        if label is None or label == "":
            unlabelled.append(path.name)
            continue
        problem = folder_name_problem(label)
        if problem:
            bad_labels.append(f"{path.name!r} -> {label!r} ({problem})")
            continue
        by_class.setdefault(unicodedata.normalize("NFC", label), []).append(
            (path, Path(path.name))
        )
    if bad_labels:
        raise ValueError(
            f"label_from_filename gave classes that cannot be class folders: "
            f"{'; '.join(bad_labels[:3])}. Return a plain name such as 'cat', or None "
            "for a file without a class."
        )
    if unlabelled:
        shown = ", ".join(unlabelled[:3])
        raise ValueError(
            f"Cannot read a class from {len(unlabelled)} file name(s) in {str(source)!r} "
            f"(e.g. {shown}). Flat folders need names like 'cat.0.jpg'; pass "
            "label_from_filename=... for another naming scheme, or use one sub-folder "
            "per class."
        )
    return dict(sorted(by_class.items()))


def _check_not_split_folders(source: Path, by_class) -> None:
    """Refuses a source whose "classes" are splits holding class folders (``train/cat``)."""
    names = [name for name, pictures in by_class.items() if pictures]
    if len(names) < 2 or not all(name.casefold() in _SPLIT_NAMES for name in names):
        return
    if all(len(relative.parts) > 1 for name in names for _, relative in by_class[name]):
        inner = sorted({relative.parts[0] for _, relative in by_class[names[0]]})
        example = next((n for n in names if n.casefold().startswith("train")), names[0])
        raise ValueError(
            f"The class folders of {str(source)!r} are {names}, which are splits, each "
            f"holding sub-folders ({inner[:4]}...): their pictures would get the split "
            "as their class. Pass one split as the source, e.g. "
            f"source={str(source / example)!r}."
        )


def _pictures_below(folder: Path, left_out: list[str] | None = None) -> list[Path]:
    """The picture entries below ``folder`` (any depth); hidden ones go to ``left_out``."""
    entries, _ = walk_entries(folder)
    pictures = []
    for path in entries:
        if not is_image_name(path):
            continue
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            if left_out is not None:
                left_out.append(f"{str(path)!r} (hidden)")
        else:
            pictures.append(path)
    return pictures


def _regular_files(paths: list[Path], left_out: list[str]) -> list[Path]:
    """The paths that are files; the others are described in ``left_out``."""
    files = []
    for path in paths:
        kind, detail = entry_kind(path)
        if kind == REGULAR:
            files.append(path)
        else:
            left_out.append(f"{str(path)!r} ({detail})")
    return files


def _warn_left_out(left_out: list[str]) -> None:
    if left_out:
        more = f" and {len(left_out) - 3} more" if len(left_out) > 3 else ""
        warnings.warn(
            f"{len(left_out)} entries with a picture name are left out, as hidden files "
            f"or entries that are not files: {', '.join(left_out[:3])}{more}. "
            "verify_images() lists those the Keras loader would fail on.",
            stacklevel=4,
        )


def _check_readable(plan) -> None:
    """Refuses pictures that cannot be read, before anything is written."""
    unreadable = [
        str(path)
        for per_class in plan.values()
        for pictures in per_class.values()
        for path, _ in pictures
        if not os.access(path, os.R_OK)
    ]
    if unreadable:
        more = f" and {len(unreadable) - 3} more" if len(unreadable) > 3 else ""
        raise PermissionError(
            f"{len(unreadable)} picture(s) cannot be read (permission denied): "
            f"{', '.join(repr(p) for p in unreadable[:3])}{more}. Nothing was written."
        )


def _plan(by_class, split_sizes, seed) -> dict[str, dict[str, list[tuple[Path, Path]]]]:
    plan: dict[str, dict[str, list[tuple[Path, Path]]]] = {name: {} for name in split_sizes}
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


def _targets(plan, destination: Path) -> dict[tuple[str, str], list[tuple[Path, Path]]]:
    """{(split, class): [(source file, target file)]}; a class folder's sub-paths are kept."""
    copies = {}
    for split_name, per_class in plan.items():
        for class_name, files in per_class.items():
            folder = destination / split_name / class_name
            copies[(split_name, class_name)] = [
                (file, folder / relative) for file, relative in files
            ]
    return copies


def _check_targets(copies, source: Path, destination: Path, method: str):
    """The (source, target) pairs to write, after every check; raises before any write."""
    by_key: dict[str, Path] = {}
    for pairs in copies.values():
        for file, target in pairs:
            key = unicodedata.normalize("NFC", str(target)).casefold()
            other = by_key.setdefault(key, file)
            if other != file:
                raise ValueError(
                    f"{str(other)!r} and {str(file)!r} would both be written to "
                    f"{str(target)!r} on a case-insensitive disk (macOS, Windows). "
                    "Rename one of them; nothing was written."
                )
    to_write = []
    for pairs in copies.values():
        for file, target in pairs:
            if os.path.lexists(target):
                if target.is_file() and not target.is_symlink() and same_bytes(file, target):
                    continue  # Already there, with the same bytes (exist_ok=True).
                raise FileExistsError(
                    f"{str(target)!r} already exists with different content; it is left "
                    f"as it is and nothing was written. Use an empty destination."
                )
            to_write.append((file, target))
    if method == "hardlink" and to_write:
        existing = destination
        while not existing.exists():
            existing = existing.parent
        if os.stat(existing).st_dev != os.stat(source).st_dev:
            raise OSError(
                f"Cannot hard-link from {str(source)!r} to {str(destination)!r}: hard "
                "links need source and destination on the same file system. Use "
                "method='copy'. Nothing was written."
            )
    _warn_same_pictures(copies)
    return to_write


def _warn_same_pictures(copies) -> None:
    """Warns when one picture (same name, same bytes) is in two sub-folders of a class."""
    by_name: dict[tuple[str, str], list[Path]] = {}
    for (_, class_name), pairs in copies.items():
        for file, _ in pairs:
            by_name.setdefault((class_name, file.name), []).append(file)
    repeated = []
    for files in by_name.values():
        for other in files[1:]:
            if same_bytes(files[0], other):
                repeated.append((files[0], other))
    if repeated:
        first, second = repeated[0]
        warnings.warn(
            f"{len(repeated)} picture(s) are in the source twice, with the same bytes "
            f"(e.g. {str(first)!r} and {str(second)!r}); both copies are used and may "
            "land in different splits, e.g. train and test.",
            stacklevel=4,
        )


def _write(to_write, destination: Path, method: str) -> None:
    """Writes every pair; on an error, removes only what this call created."""
    created_files: list[Path] = []
    created_folders: list[Path] = []
    try:
        for file, target in to_write:
            _make_folders(target.parent, created_folders)
            if method == "hardlink":
                os.link(file, target)
            else:
                atomic_copy(file, target)
            created_files.append(target)
    except BaseException as error:
        for path in reversed(created_files):
            path.unlink(missing_ok=True)
        for folder in reversed(created_folders):
            try:
                folder.rmdir()  # only if empty: never someone else's file
            except OSError:
                pass
        if isinstance(error, OSError):
            raise OSError(
                f"Writing {str(target)!r} from {str(file)!r} failed ({error}). The "
                f"{len(created_files)} file(s) written by this call were removed again."
            ) from error
        raise


def _make_folders(folder: Path, created: list[Path]) -> None:
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir()
        created.append(path)
