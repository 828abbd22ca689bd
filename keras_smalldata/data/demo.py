"""`demo_dataset`: small real datasets written as class folders, without a network.

Two tasks:

- ``"faces"``: scikit-image's subset of Labeled Faces in the Wild, faces
  against other patches. Offline and easy: the quick start's data.
- ``"fashion_tops"``: Fashion-MNIST's four upper-body classes (T-shirt/top,
  pullover, coat, shirt), loaded through `keras.datasets.fashion_mnist`
  (Keras' own download and cache). Hard: ImageNet features barely beat raw
  pixels on it, so augmentation and fine-tuning can show what they buy.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from keras_smalldata import _arguments as args
from keras_smalldata._files import _umask, atomic_write_bytes, atomic_write_text

DEMO_SPLITS = ("train", "validation", "test")
_MANIFEST = "keras_smalldata_demo.json"
_FORMAT_VERSION = 1
# Fashion-MNIST's label of each upper-body class.
FASHION_TOPS = {"t_shirt_top": 0, "pullover": 2, "coat": 4, "shirt": 6}
_FASHION_FILES = (
    "train-labels-idx1-ubyte.gz",
    "train-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
)


@dataclasses.dataclass(frozen=True)
class _Task:
    classes: tuple[str, ...]
    source: str
    native_size: int
    default_size: int
    default_splits: tuple[int, int, int]
    # How many pictures per class each source split holds: (train + validation, test).
    available: tuple[int, int]
    load: Callable[[], dict]
    file_mode: str  # PIL mode of the written PNG files
    name_digits: int  # the source index's width in the file names


def _load_lfw_subset() -> dict:
    """{"train": {class: pictures}, "test": None}: one pool, split by `demo_dataset`."""
    try:
        from skimage import data as skimage_data
    except ImportError as error:
        raise ImportError(
            "demo_dataset('faces') needs scikit-image (`pip install scikit-image`), "
            "which ships the pictures it uses."
        ) from error
    faces_and_not = np.asarray(skimage_data.lfw_subset())  # (200, 25, 25) in [0, 1]
    pixels = np.clip(np.round(faces_and_not * 255.0), 0, 255).astype(np.uint8)
    return {"train": {"faces": pixels[:100], "not_faces": pixels[100:]}, "test": None}


def _load_fashion_tops() -> dict:
    """{"train": {class: pictures}, "test": {class: pictures}} from Keras' loader."""
    import keras

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
    except Exception as error:  # get_file raises a bare Exception when offline
        folder = os.path.join(_keras_home(), "datasets", "fashion-mnist")
        raise RuntimeError(
            "demo_dataset('fashion_tops') needs Fashion-MNIST, which "
            "keras.datasets.fashion_mnist.load_data() downloads once into "
            f"{folder!r}, and it could not be loaded ({error}). Run it once on a "
            "machine with a network, or copy the four files "
            f"{', '.join(_FASHION_FILES)} (from the Fashion-MNIST release) into that "
            "folder. Nothing was written."
        ) from error
    return {
        split: {name: x[y == label] for name, label in FASHION_TOPS.items()}
        for split, (x, y) in (("train", (x_train, y_train)), ("test", (x_test, y_test)))
    }


TASKS = {
    "faces": _Task(
        classes=("faces", "not_faces"),
        source="skimage.data.lfw_subset",
        native_size=25,
        default_size=64,
        default_splits=(60, 20, 20),
        available=(100, 0),
        load=_load_lfw_subset,
        file_mode="RGB",
        name_digits=3,
    ),
    "fashion_tops": _Task(
        classes=tuple(FASHION_TOPS),
        source="keras.datasets.fashion_mnist",
        native_size=28,
        default_size=28,
        default_splits=(100, 50, 250),
        available=(6000, 1000),
        load=_load_fashion_tops,
        file_mode="L",
        name_digits=4,
    ),
}


def _keras_home() -> str:
    return os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")


def default_demo_dir(
    task: str = "faces",
    image_size: int | None = None,
    splits: tuple[int, int, int] | None = None,
    seed: int = 1337,
) -> Path:
    """Where `demo_dataset` writes by default, under ``$KERAS_HOME/datasets``.

    The folder's name holds the settings that differ from the task's
    defaults, so datasets made with other settings sit side by side.
    """
    spec = TASKS[task]
    size = spec.default_size if image_size is None else image_size
    name = f"smalldata_{task}_{size}px"
    if splits is not None and tuple(splits) != spec.default_splits:
        name += "_" + "-".join(str(int(n)) for n in splits)
    if seed != 1337:
        name += f"_seed{seed}"
    return Path(_keras_home()) / "datasets" / name


def demo_dataset(
    task: str = "faces",
    directory: str | os.PathLike | None = None,
    *,
    image_size: int | tuple[int, int] | None = None,
    splits: tuple[int, int, int] | None = None,
    seed: int = 1337,
) -> Path:
    """Writes a small real dataset as class folders, ready for `image_dataset_from_directory`.

    ``"faces"`` (the default, offline and easy) is scikit-image's subset of
    Labeled Faces in the Wild: classes ``faces`` and ``not_faces``, 60 / 20
    / 20 pictures per class. ``"fashion_tops"`` (hard) is Fashion-MNIST's
    four upper-body classes, loaded with `keras.datasets.fashion_mnist`:
    100 / 50 / 250 pictures per class. Pictures are PNG files in
    ``train/``, ``validation/`` and ``test/``, one sub-folder per class. A
    second call with the same arguments reuses the files; a folder holding
    anything else is refused, never modified.

    Args:
        task: ``"faces"`` or ``"fashion_tops"``.
        directory: Where to write. Default: a folder under
            ``$KERAS_HOME/datasets`` (``~/.keras/datasets``) named after the
            task and its settings.
        image_size: Side of the square pictures in pixels (16 to 1024), or a
            ``(size, size)`` pair; default 64 for faces, 28 (the native
            size) for fashion_tops.
        splits: Pictures per class in train, validation and test.
        seed: Seed of the draw that assigns pictures to splits.

    Returns:
        The dataset's root folder (holding ``train``, ``validation``, ``test``).

    Raises:
        ValueError: For an unknown task or bad settings.
        FileExistsError: When ``directory`` holds anything else.
        RuntimeError: For ``"fashion_tops"`` offline without Keras' copy of
            Fashion-MNIST.

    Example:

    ```python
    root = demo_dataset()
    train = keras.utils.image_dataset_from_directory(
        root / "train", image_size=(64, 64), label_mode="binary")
    train.class_names
    # ['faces', 'not_faces']
    ```
    """
    if not isinstance(task, str) or task not in TASKS:
        hint = args.did_you_mean(task, TASKS) if isinstance(task, str) else ""
        raise ValueError(
            f"`task` must be one of {sorted(TASKS)}.{hint} To choose the folder, pass "
            f"directory=... . {args.received('task', task)}"
        )
    spec = TASKS[task]
    image_size = _check_image_size(spec.default_size if image_size is None else image_size)
    args.check_seed(seed)
    splits = _check_splits(spec, spec.default_splits if splits is None else splits)
    root = (
        Path(directory).expanduser()
        if directory is not None
        else default_demo_dir(task, image_size, splits, seed)
    )
    settings = {
        "format_version": _FORMAT_VERSION,
        "source": spec.source,
        "image_size": image_size,
        "split": list(splits),
        "seed": int(seed),
    }
    state = _state(root, settings)
    if state == "complete":
        return root
    if state == "ours":
        # Our own folder with some pictures missing: write back only those.
        _restore_missing(root, spec, settings)
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

    pictures = spec.load()
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}."))
    try:
        files = _write_pictures(staging, spec, pictures, image_size, splits, seed)
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


def _check_splits(spec: _Task, splits) -> tuple[int, int, int]:
    pool, test_pool = spec.available
    shape_ok = (
        isinstance(splits, (tuple, list))
        and len(splits) == 3
        and all(args.is_integer(n) and n >= 1 for n in splits)
    )
    if not shape_ok:
        raise ValueError(
            "`splits` must be three positive ints (train, validation, test pictures "
            f"per class). {args.received('splits', splits)}"
        )
    train, validation, test = (int(n) for n in splits)
    if test_pool == 0 and train + validation + test > pool:
        raise ValueError(
            f"`splits` must add up to at most {pool} pictures per class (the source "
            f"holds {pool} per class). {args.received('splits', splits)}"
        )
    if test_pool and (train + validation > pool or test > test_pool):
        raise ValueError(
            f"`splits` can take at most {pool} training plus validation pictures per "
            f"class (from the training split) and {test_pool} test pictures per class "
            f"(from the test split). {args.received('splits', splits)}"
        )
    return train, validation, test


def _assignment(spec: _Task, pictures: dict, splits, seed) -> dict:
    """{(split, class): source pictures}: a seeded draw, the test split kept apart."""
    chosen = {}
    for class_index, class_name in enumerate(spec.classes):
        pool = pictures["train"][class_name]
        order = np.random.default_rng([seed, class_index]).permutation(len(pool))
        if pictures["test"] is None:
            bounds = np.cumsum((0,) + tuple(splits))
            for split, start, stop in zip(DEMO_SPLITS, bounds[:-1], bounds[1:]):
                chosen[split, class_name] = order[start:stop], pool
        else:
            train, validation, test = splits
            chosen["train", class_name] = order[:train], pool
            chosen["validation", class_name] = order[train : train + validation], pool
            chosen["test", class_name] = np.arange(test), pictures["test"][class_name]
    return chosen


def _write_pictures(root: Path, spec: _Task, pictures, image_size, splits, seed) -> list[str]:
    from PIL import Image

    written = []
    for (split, class_name), (indices, pool) in _assignment(spec, pictures, splits, seed).items():
        folder = root / split / class_name
        folder.mkdir(parents=True)
        for index in indices:
            picture = Image.fromarray(np.asarray(pool[index], dtype=np.uint8))
            if image_size != spec.native_size:
                picture = picture.resize((image_size, image_size), Image.Resampling.BICUBIC)
            # The Keras loader gives 3 channels either way (color_mode="rgb").
            picture = picture.convert(spec.file_mode)
            name = f"{class_name}_{int(index):0{spec.name_digits}d}.png"
            encoded = io.BytesIO()
            picture.save(encoded, format="PNG")
            atomic_write_bytes(folder / name, encoded.getvalue())
            written.append(f"{split}/{class_name}/{name}")
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


def _restore_missing(root: Path, spec: _Task, settings: dict) -> None:
    staging = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}."))
    try:
        files = _write_pictures(
            staging, spec, spec.load(), settings["image_size"], settings["split"], settings["seed"]
        )
        for name in files:
            target = root / name
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging / name, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
