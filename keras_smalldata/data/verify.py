"""`verify_images`: find the files `image_dataset_from_directory` would fail on."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from keras_smalldata import _arguments as args
from keras_smalldata import _backend
from keras_smalldata._files import atomic_write_text
from keras_smalldata.data._files import (
    BROKEN_LINK,
    IMAGE_EXTENSIONS,
    SPECIAL,
    entry_kind,
    format_table,
    is_image_name,
    walk_entries,
)

# What the first bytes of a picture say it is: the formats TensorFlow's
# `decode_image` (the decoder of `image_dataset_from_directory`) understands.
# They only explain a failure: the verdict always comes from the decoder.
_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
)
_OTHER_SIGNATURES = (
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"%PDF", "PDF"),
    (b"<", "HTML/XML text"),
)
# `image_dataset_from_directory(color_mode=...)` -> channels given to the decoder.
COLOR_MODES = {"grayscale": 1, "rgb": 3, "rgba": 4}

EMPTY = "empty"
NOT_AN_IMAGE = "not an image"
UNSUPPORTED = "unsupported format"
CORRUPT = "corrupt"
BROKEN = BROKEN_LINK
NOT_A_FILE = "not a file"
UNREADABLE = "unreadable"
UNREADABLE_FOLDER = "unreadable folder"
SKIPPED = "skipped by loader"
PROBLEMS = (
    EMPTY, NOT_AN_IMAGE, UNSUPPORTED, CORRUPT, BROKEN, NOT_A_FILE, UNREADABLE,
    UNREADABLE_FOLDER,
)


@dataclass(frozen=True)
class ImageProblem:
    """One file that would not load, or that the loader skips.

    Attributes:
        path: The file (where it was found).
        reason: One of ``"empty"``, ``"not an image"``, ``"unsupported
            format"``, ``"corrupt"``, ``"broken link"`` (a link to nothing),
            ``"not a file"`` (a named pipe, socket or device: never opened),
            ``"unreadable"`` (the file cannot be read, e.g. permissions),
            ``"unreadable folder"`` (a folder that cannot be listed: the
            loader silently leaves out its pictures), or ``"skipped by
            loader"`` (a file whose extension the loader ignores: it is left
            out of the dataset).
        detail: What the decoder, the file system or the file's first bytes
            said.
    """

    path: Path
    reason: str
    detail: str = ""


@dataclass
class VerificationReport:
    """The result of `verify_images`.

    Attributes:
        directory: The folder that was checked.
        checked: How many entries with an image extension were checked.
        problems: Every bad file or folder (`ImageProblem`), in natural path order.
        skipped: Files the loader would silently leave out (wrong extension).
        quarantine_dir: Where bad files were moved, or None.
        moved: ``{original path: new path}`` for each quarantined file.
        not_moved: ``{original path: why}`` for each bad file that could
            not be moved (it is still in place).
        report_files: The report files written into ``quarantine_dir``
            (``report-<date>-<time>.txt`` and ``.json``, under new names each
            run; no file is ever overwritten), or ``[]``.
    """

    directory: Path
    checked: int
    problems: list[ImageProblem] = field(default_factory=list)
    skipped: list[ImageProblem] = field(default_factory=list)
    quarantine_dir: Path | None = None
    moved: dict[Path, Path] = field(default_factory=dict)
    not_moved: dict[Path, str] = field(default_factory=dict)
    report_files: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every picture loads (skipped files do not count)."""
        return not self.problems

    @property
    def bad_files(self) -> list[Path]:
        """Paths of the bad files and folders, as they were found."""
        return [problem.path for problem in self.problems]

    def counts(self) -> dict[str, int]:
        """Number of entries per reason, including ``"loads"`` for the good ones."""
        bad_pictures = sum(p.reason != UNREADABLE_FOLDER for p in self.problems)
        result = {"loads": self.checked - bad_pictures}
        for reason in PROBLEMS:
            result[reason] = sum(p.reason == reason for p in self.problems)
        result[SKIPPED] = len(self.skipped)
        return result

    def to_dict(self) -> dict:
        """A JSON-ready dict of the report."""
        return {
            "directory": str(self.directory),
            "checked": self.checked,
            "counts": self.counts(),
            "problems": [
                {
                    "path": str(p.path),
                    "reason": p.reason,
                    "detail": p.detail,
                    "moved_to": str(self.moved[p.path]) if p.path in self.moved else None,
                    "not_moved": self.not_moved.get(p.path),
                }
                for p in self.problems
            ],
            "skipped": [{"path": str(p.path), "detail": p.detail} for p in self.skipped],
            "report_files": [str(path) for path in self.report_files],
        }

    def __str__(self) -> str:
        counts = self.counts()
        summary = format_table(
            ["result", "files"], [[reason, f"{n:,}"] for reason, n in counts.items() if n or reason == "loads"]
        )
        lines = [f"Checked {self.checked:,} pictures in {self.directory}", summary]
        listed = self.problems + self.skipped
        if listed:
            rows = []
            for p in listed:
                where = os.path.relpath(p.path, self.directory)
                detail = p.detail[:60]
                if p.path in self.moved:
                    detail += f" -> {self.moved[p.path]}"
                elif p.path in self.not_moved:
                    detail += f" (not moved: {self.not_moved[p.path]})"
                rows.append([where, p.reason, detail])
            lines += ["", format_table(["file", "reason", "detail"], rows)]
        if self.report_files:
            lines += ["", "Report saved as " + " and ".join(str(p) for p in self.report_files)]
        return "\n".join(lines)

    def _repr_pretty_(self, printer, cycle):  # IPython / Jupyter
        printer.text(str(self))


def verify_images(
    directory: str | os.PathLike,
    *,
    quarantine: bool = False,
    quarantine_dir: str | os.PathLike | None = None,
    verbose: int = 1,
    color_mode: str = "rgb",
) -> VerificationReport:
    """Finds every file that `keras.utils.image_dataset_from_directory` cannot load.

    Every file with an extension the loader takes (.bmp .gif .jpeg .jpg
    .png) is decoded with the loader's own decoder and the channels of
    ``color_mode``, so "verified" means "loads". Each bad file gets a reason
    (``"empty"``, ``"not an image"``, ``"unsupported format"``,
    ``"corrupt"``, ``"broken link"``, ``"not a file"``, ``"unreadable"``,
    ``"unreadable folder"``; see `ImageProblem`); files the loader ignores
    are listed as ``"skipped by loader"`` and never moved.

    Args:
        directory: The folder to check, recursively.
        quarantine: If True, bad files are MOVED (never deleted) to
            ``quarantine_dir``, keeping their relative paths, and the report
            is saved there as ``report-<date>-<time>.txt`` and ``.json``.
            Nothing there is ever overwritten: a taken name gets a number.
        quarantine_dir: Where to move bad files. Default: the sibling folder
            ``<directory>_quarantine``. Checked before the scan: a folder
            (or nothing yet) that can be written to, outside ``directory``.
        verbose: 0 (silent) or 1 (progress bar).
        color_mode: The ``color_mode`` you give the loader: ``"rgb"``,
            ``"grayscale"`` or ``"rgba"``.

    Returns:
        A `VerificationReport`; ``print(report)`` shows a table.

    Raises:
        FileNotFoundError: When ``directory`` is not a folder.
        ValueError: For ``quarantine_dir`` without ``quarantine=True``, or
            inside ``directory``.
        FileExistsError: When ``quarantine_dir`` is a file.
        PermissionError: When ``quarantine_dir`` cannot be written to.

    Example:

    ```python
    report = verify_images("PetImages", quarantine=True)
    print(report)
    report.ok
    # True
    ```
    """
    directory = Path(directory).expanduser()
    quarantine = args.check_bool("quarantine", quarantine)
    verbose = args.check_int("verbose", int(verbose) if isinstance(verbose, bool) else verbose, minimum=0)
    args.check_choice("color_mode", color_mode, tuple(COLOR_MODES))
    if not directory.is_dir():
        raise FileNotFoundError(f"directory={str(directory)!r} is not a folder.")
    if quarantine_dir is not None and not quarantine:
        raise ValueError("quarantine_dir is only used with quarantine=True.")
    target_dir = None
    if quarantine:
        target_dir = _check_quarantine_dir(directory, quarantine_dir)

    entries, folder_errors = walk_entries(directory)
    pictures = [p for p in entries if is_image_name(p)]
    skipped = [
        ImageProblem(p, SKIPPED, f"extension {p.suffix or '(none)'} not in {IMAGE_EXTENSIONS}")
        for p in entries
        if not is_image_name(p) and not p.name.startswith(".")
    ]
    problems = [
        ImageProblem(folder, UNREADABLE_FOLDER, f"{type(error).__name__}: {error.strerror or error}")
        for folder, error in folder_errors
    ]

    progbar = None
    if verbose and pictures:
        import keras

        progbar = keras.utils.Progbar(len(pictures), unit_name="file")
    channels = COLOR_MODES[color_mode]
    for index, path in enumerate(pictures, start=1):
        problem = _check_file(path, channels, color_mode)
        if problem is not None:
            problems.append(problem)
        if progbar is not None:
            progbar.update(index)

    report = VerificationReport(directory, len(pictures), problems, skipped)
    if target_dir is not None:  # set exactly when quarantine is True
        _quarantine(report, target_dir)
    return report


def _check_quarantine_dir(directory: Path, quarantine_dir) -> Path:
    """The quarantine folder, checked before the scan: usable, writable, outside."""
    if quarantine_dir is None:
        resolved = directory.resolve()
        target = resolved.parent / f"{resolved.name}_quarantine"
    else:
        if not isinstance(quarantine_dir, (str, os.PathLike)) or not os.fspath(quarantine_dir):
            raise ValueError(
                "`quarantine_dir` must be a folder path, or None for "
                f"'<directory>_quarantine'. {args.received('quarantine_dir', quarantine_dir)}"
            )
        target = Path(quarantine_dir).expanduser()
    resolved = target.resolve()
    if resolved == directory.resolve() or directory.resolve() in resolved.parents:
        raise ValueError(
            f"quarantine_dir={str(target)!r} is inside the folder being checked; "
            "the loader would still read it. Choose a folder outside it."
        )
    existing = target
    while not os.path.lexists(existing):
        existing = existing.parent
    if not existing.is_dir():
        what = "is a file" if existing == target else f"is inside {str(existing)!r}, a file"
        raise FileExistsError(
            f"quarantine_dir={str(target)!r} {what}, not a folder. Choose a folder "
            "(it is created if needed); nothing was checked or moved."
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(
            f"quarantine_dir={str(target)!r}: {str(existing)!r} cannot be written to, "
            "so no bad file could be moved there. Choose another folder; nothing was "
            "checked or moved."
        )
    return target


def _signature(contents: bytes, table) -> str | None:
    return next((name for sig, name in table if contents.startswith(sig)), None)


def _check_file(path: Path, channels: int, color_mode: str) -> ImageProblem | None:
    entry, detail = entry_kind(path)
    if entry == BROKEN_LINK:
        return ImageProblem(path, BROKEN, detail)
    if entry == SPECIAL:
        return ImageProblem(path, NOT_A_FILE, f"{detail}; not opened (reading it could wait forever)")
    try:
        contents = path.read_bytes()
    except OSError as error:
        return ImageProblem(path, UNREADABLE, f"{type(error).__name__}: {error.strerror or error}")
    if not contents:
        return ImageProblem(path, EMPTY, "0 bytes")
    message = _decode_error(contents, channels)
    if message is None:
        return None
    kind = _signature(contents, _SIGNATURES)
    if kind is None and contents[:4] == b"RIFF" and contents[8:12] == b"WEBP":
        kind = "WebP"
    if kind is not None:
        # Decoded with the file's own channels, is it only the color mode? With
        # 3 channels, only a WebP with alpha can fail so (and a second decode
        # of a damaged JPEG would print libjpeg's warnings twice).
        if (channels != 3 or kind == "WebP") and _decode_error(contents, 0) is None:
            return ImageProblem(
                path, UNSUPPORTED, f"{kind} that does not load with color_mode={color_mode!r}: {message}"
            )
        if kind == "WebP" and "Unknown image file format" in message:
            return ImageProblem(
                path, UNSUPPORTED, f"WebP, which this TensorFlow's decoder does not read: {message}"
            )
        return ImageProblem(path, CORRUPT, f"{kind}: {message}")
    other = _signature(contents, _OTHER_SIGNATURES)
    if other == "TIFF":
        return ImageProblem(path, UNSUPPORTED, "TIFF data; the loader decodes BMP, GIF, JPEG, PNG and WebP")
    return ImageProblem(path, NOT_AN_IMAGE, f"{other or 'unknown data'}, starts with {contents[:12]!r}")


def _decode_error(contents: bytes, channels: int) -> str | None:
    """The decoder's complaint about ``contents``, or None when it decodes."""
    tf = _backend.tensorflow()
    try:
        tf.image.decode_image(contents, channels=channels, expand_animations=False)
    except (tf.errors.OpError, ValueError) as error:
        text = str(getattr(error, "message", error)).strip()
        return text.splitlines()[0] if text else type(error).__name__
    return None


def _quarantine(report: VerificationReport, target_dir: Path) -> None:
    target_dir.mkdir(parents=True, exist_ok=True)
    report.quarantine_dir = target_dir
    for problem in report.problems:
        if problem.reason == UNREADABLE_FOLDER:
            continue  # Its good pictures would go too: the folder is only reported.
        relative = problem.path.relative_to(report.directory)
        target = _free_path(target_dir / relative)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(problem.path), str(target))
        except OSError as error:
            report.not_moved[problem.path] = f"{type(error).__name__}: {error}"
            continue
        report.moved[problem.path] = target
    _write_reports(report, target_dir)


def _write_reports(report: VerificationReport, target_dir: Path) -> None:
    """Writes the report as ``.txt`` and ``.json`` under names no file has yet.

    The names are reserved first (created empty, exclusively: a file of the
    user's or of another run is never touched, even by a run at the same
    second), then written through the atomic writer.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    paths = _reserve(target_dir, f"report-{stamp}", (".txt", ".json"))
    report.report_files = paths
    try:
        atomic_write_text(paths[0], str(report) + "\n")
        atomic_write_text(paths[1], json.dumps(report.to_dict(), indent=2) + "\n")
    except BaseException:
        for path in paths:  # our own reservations, still empty
            if path.exists() and path.stat().st_size == 0:
                path.unlink()
        report.report_files = []
        raise


def _reserve(folder: Path, stem: str, suffixes) -> list[Path]:
    """Creates ``stem<suffix>`` (or ``stem-2<suffix>``...) for every suffix, all new, empty."""
    for n in range(1, 10_000):
        name = stem if n == 1 else f"{stem}-{n}"
        created = []
        try:
            for suffix in suffixes:
                path = folder / f"{name}{suffix}"
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
                created.append(path)
        except FileExistsError:
            for path in created:
                path.unlink()
            continue
        return created
    raise FileExistsError(f"No free report name {stem}-<n> in {str(folder)!r}.")


def _free_path(path: Path) -> Path:
    """``path``, or ``name.1.ext``, ``name.2.ext``... when it is taken."""
    candidate, n = path, 0
    while os.path.lexists(candidate):
        n += 1
        candidate = path.with_name(f"{path.stem}.{n}{path.suffix}")
    return candidate
