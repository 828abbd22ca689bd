"""`demo_dataset`: a small real dataset that needs no network."""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from keras_smalldata import _arguments as args
from keras_smalldata._files import _umask, atomic_write_bytes, atomic_write_text

DEMO_CLASSES = ("faces", "not_faces")
DEMO_SPLITS = ("train", "validation", "test")
_MANIFEST = "keras_smalldata_demo.json"
_FORMAT_VERSION = 1


def default_demo_dir(image_size: int = 64) -> Path:
    """Where `demo_dataset` writes by default: ``$KERAS_HOME/datasets`` or ``~/.keras/datasets``."""
    keras_home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(keras_home) / "datasets" / f"smalldata_faces_{image_size}px"


def demo_dataset(
    directory: str | os.PathLike | None = None,
    image_size: int | tuple[int, int] = 64,
    splits: tuple[int, int, int] = (60, 20, 20),
    seed: int = 1337,
) -> Path:
    """Writes the demo dataset (faces vs. not faces) as class folders, offline.

    The pictures are real: scikit-image ships a subset of Labeled Faces in
    the Wild (`skimage.data.lfw_subset`), 100 face crops and 100 crops of
    other things, 25x25 grey. They are upscaled (bicubic) to
    ``image_size`` pixels, stored as RGB PNG files and split into
    ``train/``, ``validation/`` and ``test/`` folders, each with ``faces/``
    and ``not_faces/`` sub-folders: the layout
    `keras.utils.image_dataset_from_directory` reads.

    A second call with the same arguments finds the files in place and does
    nothing (it checks a manifest and that every file is there).

    Args:
        directory: Where to write. Default: ``~/.keras/datasets/
            smalldata_faces_<size>px`` (``$KERAS_HOME`` is respected).
        image_size: Side of the square pictures, in pixels (16 to 1024), or
            a ``(size, size)`` pair as `image_dataset_from_directory` takes.
        splits: Pictures per class in train, validation and test; they must
            add up to at most 100.
        seed: Seed of the shuffle that assigns pictures to splits.

    Returns:
        The dataset's root folder (holding ``train``, ``validation``, ``test``).

    Example:

    ```python
    root = demo_dataset()
    train = keras.utils.image_dataset_from_directory(
        root / "train", image_size=(64, 64), label_mode="binary")
    train.class_names
    # ['faces', 'not_faces']
    ```
    """
    image_size = _check_image_size(image_size)
    args.check_seed(seed)
    if (
        not isinstance(splits, (tuple, list))
        or len(splits) != 3
        or not all(args.is_integer(n) and n >= 1 for n in splits)
        or sum(splits) > 100
    ):
        raise ValueError(
            "`splits` must be three positive ints (train, validation, test pictures "
            f"per class) adding up to at most 100. {args.received('splits', splits)}"
        )
    root = Path(directory).expanduser() if directory is not None else default_demo_dir(image_size)
    settings = {
        "format_version": _FORMAT_VERSION,
        "source": "skimage.data.lfw_subset",
        "image_size": image_size,
        "split": [int(n) for n in splits],
        "seed": int(seed),
    }
    state = _state(root, settings)
    if state == "complete":
        return root
    if state == "ours":
        # Our own folder with some pictures missing: write back only those.
        _restore_missing(root, settings)
        return root
    if root.exists() and not root.is_dir():
        raise FileExistsError(
            f"{str(root)!r} exists and is a file, not a folder. Choose another "
            "directory; nothing was written."
        )
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(
            f"{str(root)!r} exists and does not hold this demo dataset (settings {settings}). "
            "Choose another directory; nothing there is deleted."
        )

    pictures = _load_lfw_subset()
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}."))
    try:
        files = _write_pictures(staging, pictures, image_size, splits, seed)
        atomic_write_text(staging / _MANIFEST, json.dumps({**settings, "files": files}, indent=1))
        # mkdtemp makes a private (0700) folder: give the dataset the usual mode.
        os.chmod(staging, 0o777 & ~_umask())
        if root.exists():
            root.rmdir()  # empty, checked above
        os.replace(staging, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return root


def _check_image_size(image_size) -> int:
    """The side of the square pictures: an int, or a ``(size, size)`` pair."""
    if isinstance(image_size, (tuple, list)) and len(image_size) == 2:
        height = args.check_int("image_size", image_size[0], minimum=16, maximum=1024, what="pixels")
        width = args.check_int("image_size", image_size[1], minimum=16, maximum=1024, what="pixels")
        if height != width:
            raise ValueError(
                "The demo pictures are square: `image_size` must be one int or a "
                f"(size, size) pair. {args.received('image_size', image_size)}"
            )
        return height
    return args.check_int("image_size", image_size, minimum=16, maximum=1024, what="pixels")


def _load_lfw_subset() -> dict[str, np.ndarray]:
    try:
        from skimage import data as skimage_data
    except ImportError as error:
        raise ImportError(
            "demo_dataset needs scikit-image (`pip install scikit-image`), which ships "
            "the pictures it uses."
        ) from error
    faces_and_not = np.asarray(skimage_data.lfw_subset())  # (200, 25, 25) in [0, 1]
    return {"faces": faces_and_not[:100], "not_faces": faces_and_not[100:]}


def _write_pictures(root: Path, pictures, image_size, splits, seed) -> list[str]:
    from PIL import Image

    written = []
    for class_index, class_name in enumerate(DEMO_CLASSES):
        grey = pictures[class_name]
        order = np.random.default_rng([seed, class_index]).permutation(len(grey))
        start = 0
        for split_name, count in zip(DEMO_SPLITS, splits):
            folder = root / split_name / class_name
            folder.mkdir(parents=True)
            for index in order[start : start + count]:
                pixels = np.clip(np.round(grey[index] * 255.0), 0, 255).astype(np.uint8)
                picture = Image.fromarray(pixels).resize(
                    (image_size, image_size), Image.Resampling.BICUBIC
                )
                name = f"{class_name}_{index:03d}.png"
                encoded = io.BytesIO()
                picture.convert("RGB").save(encoded, format="PNG")
                atomic_write_bytes(folder / name, encoded.getvalue())
                written.append(f"{split_name}/{class_name}/{name}")
            start += count
    return written


def _state(root: Path, settings: dict) -> str:
    """"complete", "ours" (our manifest, some files missing) or "other"."""
    manifest_path = root / _MANIFEST
    if not manifest_path.is_file():
        return "other"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "other"
    files = manifest.pop("files", [])
    if manifest != settings:
        return "other"
    return "complete" if all((root / name).is_file() for name in files) else "ours"


def _restore_missing(root: Path, settings: dict) -> None:
    staging = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}."))
    try:
        files = _write_pictures(
            staging, _load_lfw_subset(), settings["image_size"], settings["split"], settings["seed"]
        )
        for name in files:
            target = root / name
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging / name, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
