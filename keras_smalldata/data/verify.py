"""`verify_images`: find the files `image_dataset_from_directory` would fail on."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from keras_smalldata import _backend
from keras_smalldata._files import atomic_write_text
from keras_smalldata.data._files import (
    IMAGE_EXTENSIONS,
    format_table,
    is_image_name,
    natural_key,
)

# What the first bytes of a file say it is. These are the formats TensorFlow's
# `decode_image` (the decoder of `image_dataset_from_directory`) understands.
_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
)
_OTHER_SIGNATURES = (
    (b"RIFF", "WEBP/RIFF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"%PDF", "PDF"),
    (b"<", "HTML/XML text"),
)

EMPTY = "empty"
NOT_AN_IMAGE = "not an image"
UNSUPPORTED = "unsupported format"
CORRUPT = "corrupt"
SKIPPED = "skipped by loader"
PROBLEMS = (EMPTY, NOT_AN_IMAGE, UNSUPPORTED, CORRUPT)


@dataclass(frozen=True)
class ImageProblem:
    """One file that would not load, or that the loader skips.

    Attributes:
        path: The file (where it was found).
        reason: One of ``"empty"``, ``"not an image"``, ``"unsupported format"``,
            ``"corrupt"`` (bad files) or ``"skipped by loader"`` (a file whose
            extension the loader ignores: it is left out of the dataset).
        detail: What the decoder or the file's first bytes said.
    """

    path: Path
    reason: str
    detail: str = ""


@dataclass
class VerificationReport:
    """The result of `verify_images`.

    Attributes:
        directory: The folder that was checked.
        checked: How many files with an image extension were decoded.
        problems: Every bad file (`ImageProblem`), in natural path order.
        skipped: Files the loader would silently leave out (wrong extension).
        quarantine_dir: Where bad files were moved, or None.
        moved: ``{original path: new path}`` for each quarantined file.
    """

    directory: Path
    checked: int
    problems: list[ImageProblem] = field(default_factory=list)
    skipped: list[ImageProblem] = field(default_factory=list)
    quarantine_dir: Path | None = None
    moved: dict[Path, Path] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every picture decodes (skipped files do not count)."""
        return not self.problems

    @property
    def bad_files(self) -> list[Path]:
        """Paths of the bad files, as they were found."""
        return [problem.path for problem in self.problems]

    def counts(self) -> dict[str, int]:
        """Number of files per reason, including ``"loads"`` for the good ones."""
        result = {"loads": self.checked - len(self.problems)}
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
                }
                for p in self.problems
            ],
            "skipped": [{"path": str(p.path), "detail": p.detail} for p in self.skipped],
        }

    def __str__(self) -> str:
        counts = self.counts()
        summary = format_table(
            ["result", "files"], [[reason, f"{n:,}"] for reason, n in counts.items()]
        )
        lines = [f"Checked {self.checked:,} pictures in {self.directory}", summary]
        listed = self.problems + self.skipped
        if listed:
            rows = []
            for p in listed:
                where = os.path.relpath(p.path, self.directory)
                moved = self.moved.get(p.path)
                rows.append([where, p.reason, p.detail[:60] + (f" -> {moved}" if moved else "")])
            lines += ["", format_table(["file", "reason", "detail"], rows)]
        return "\n".join(lines)

    def _repr_pretty_(self, printer, cycle):  # IPython / Jupyter
        printer.text(str(self))


def verify_images(
    directory: str | os.PathLike,
    quarantine: bool = False,
    quarantine_dir: str | os.PathLike | None = None,
    verbose: int = 1,
) -> VerificationReport:
    """Finds every file that `keras.utils.image_dataset_from_directory` cannot load.

    Each file with an extension the loader takes (.bmp .gif .jpeg .jpg .png)
    is read and decoded with the loader's own decoder
    (``tf.image.decode_image(..., channels=3, expand_animations=False)``), so
    "verified" means "loads". A file is reported as:

    - ``"empty"``: zero bytes;
    - ``"not an image"``: its first bytes are not any picture format (HTML
      error pages, text, truncated downloads of nothing);
    - ``"unsupported format"``: a picture in a format the loader does not
      decode (WEBP or TIFF renamed ``.jpg``);
    - ``"corrupt"``: a JPEG/PNG/GIF/BMP the decoder rejects (truncated, damaged).

    Files with other extensions are listed as ``"skipped by loader"``: the
    loader leaves them out without a word. They are never moved.

    Args:
        directory: The folder to check, recursively (class folders included).
        quarantine: If True, bad files are MOVED (never deleted) to
            ``quarantine_dir``, keeping their relative paths, and the report
            is written there as ``report.txt`` and ``report.json``.
        quarantine_dir: Where to move bad files. Default: a sibling folder
            ``<directory>_quarantine``.
        verbose: 0 for silence, 1 for a progress bar.

    Returns:
        A `VerificationReport`; ``print(report)`` shows a table.

    Example:

    ```python
    report = verify_images("PetImages", quarantine=True)
    print(report)
    report.ok
    # True
    ```
    """
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise FileNotFoundError(f"directory={str(directory)!r} is not a folder.")
    if quarantine_dir is not None and not quarantine:
        raise ValueError("quarantine_dir is only used with quarantine=True.")
    target_dir = Path(quarantine_dir).expanduser() if quarantine_dir else None
    if quarantine and target_dir is None:
        target_dir = directory.parent / f"{directory.name}_quarantine"
    if target_dir is not None:
        resolved = target_dir.resolve()
        if resolved == directory.resolve() or directory.resolve() in resolved.parents:
            raise ValueError(
                f"quarantine_dir={str(target_dir)!r} is inside the folder being checked; "
                "the loader would still read it. Choose a folder outside it."
            )

    files = sorted(
        (p for p in directory.rglob("*") if p.is_file()),
        key=lambda p: natural_key(str(p.relative_to(directory))),
    )
    pictures = [p for p in files if is_image_name(p)]
    skipped = [
        ImageProblem(p, SKIPPED, f"extension {p.suffix or '(none)'} not in {IMAGE_EXTENSIONS}")
        for p in files
        if not is_image_name(p) and not p.name.startswith(".")
    ]

    progbar = None
    if verbose and pictures:
        import keras

        progbar = keras.utils.Progbar(len(pictures), unit_name="file")
    problems = []
    for index, path in enumerate(pictures, start=1):
        problem = _check_file(path)
        if problem is not None:
            problems.append(problem)
        if progbar is not None:
            progbar.update(index)

    report = VerificationReport(directory, len(pictures), problems, skipped)
    if quarantine:
        _quarantine(report, target_dir)
    return report


def _check_file(path: Path) -> ImageProblem | None:
    contents = path.read_bytes()
    if not contents:
        return ImageProblem(path, EMPTY, "0 bytes")
    kind = next((name for sig, name in _SIGNATURES if contents.startswith(sig)), None)
    if kind is None:
        other = next((name for sig, name in _OTHER_SIGNATURES if contents.startswith(sig)), None)
        if other in ("WEBP/RIFF", "TIFF"):
            return ImageProblem(path, UNSUPPORTED, f"{other} data; the loader decodes {IMAGE_EXTENSIONS}")
        start = contents[:12]
        described = other or "unknown data"
        return ImageProblem(path, NOT_AN_IMAGE, f"{described}, starts with {start!r}")
    tf = _backend.tensorflow()
    try:
        tf.image.decode_image(contents, channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError, ValueError) as error:
        message = str(getattr(error, "message", error)).strip().splitlines()[0]
        return ImageProblem(path, CORRUPT, f"{kind}: {message}")
    return None


def _quarantine(report: VerificationReport, target_dir: Path) -> None:
    target_dir.mkdir(parents=True, exist_ok=True)
    report.quarantine_dir = target_dir
    for problem in report.problems:
        relative = problem.path.relative_to(report.directory)
        target = _free_path(target_dir / relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(problem.path), str(target))
        report.moved[problem.path] = target
    atomic_write_text(target_dir / "report.txt", str(report) + "\n")
    atomic_write_text(target_dir / "report.json", json.dumps(report.to_dict(), indent=2) + "\n")


def _free_path(path: Path) -> Path:
    """``path``, or ``name.1.ext``, ``name.2.ext``... when it is taken."""
    candidate, n = path, 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}.{n}{path.suffix}")
    return candidate
