"""Sources: the inputs of `extract_features` as one stream of (images, labels) batches.

A source is made from NumPy arrays (``x`` or ``(x, y)``) or a `tf.data.Dataset`
(of images or of ``(images, labels)``, batched or not). It knows the
per-sample image shape, whether there are labels, the class names when the
data carries them, the number of samples when it can be known without a
pass, and the data's part of the cache key: the content of the arrays, the
bytes of the files of an `image_dataset_from_directory` dataset with its
pipeline, or for any other dataset the (picture, label) pairs as they come
out of a pass. Batches come as NumPy arrays, whatever the backend.

Empty data is refused by `_empty_data`, the one place that says so: when a
source is made (the size is known) or at the end of a pass that yielded
nothing (a dataset of unknown size).
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

from keras_smalldata._backend import is_tf_dataset, tensorflow
from keras_smalldata.features import _tf_data

DEFAULT_BATCH_SIZE = 32


def _empty_data() -> ValueError:
    return ValueError("data is empty: there are no samples to extract features from.")


def _check_labels(labels: np.ndarray) -> np.ndarray:
    if labels.dtype.kind not in "biuf":
        raise TypeError(
            f"Labels must be numbers or booleans, got dtype {labels.dtype}. Map string "
            "labels to integers first (their order gives `class_names`)."
        )
    return labels


def _array_digest(array: np.ndarray) -> str:
    digest = hashlib.sha256()
    step = max(1, (1 << 24) // max(1, array[:1].nbytes))
    for start in range(0, len(array), step):
        block = np.ascontiguousarray(array[start : start + step])
        digest.update(block.data.cast("B"))
    return digest.hexdigest()


def _stack(pictures) -> np.ndarray:
    """``np.asarray`` of pictures, with an error naming the first one of another size."""
    if isinstance(pictures, (list, tuple)) and pictures:
        shapes = [np.shape(picture) for picture in pictures]
        for index, shape in enumerate(shapes):
            if shape != shapes[0]:
                size = "x".join(str(d) for d in shapes[0][:2])
                raise ValueError(
                    f"data is a list of pictures of different sizes: picture 0 has shape "
                    f"{shapes[0]} and picture {index} has shape {shape}. The pictures of a "
                    f"batch must have one size: resize them first, e.g. to {size} with "
                    "keras.ops.image.resize(picture, size), or load them with "
                    "keras.utils.image_dataset_from_directory(..., image_size=(height, width))."
                )
    return np.asarray(pictures)


def _fits(shape: tuple, expected: tuple) -> bool:
    return len(shape) == len(expected) and all(e is None or e == d for d, e in zip(shape, expected))


class ArraySource:
    """NumPy arrays (or anything `np.asarray` accepts) as batches, in order."""

    kind = "arrays"
    reads_tf_data = False
    content: str | None = None  # the data is keyed by its arrays, read in full

    def __init__(self, x, y, batch_size: int, sample_shape: tuple | None = None):
        self.x = _stack(x)
        if self.x.dtype.kind not in "biuf":
            raise TypeError(
                f"Images must be numbers, got an array of dtype {self.x.dtype}."
            )
        if sample_shape is not None and _fits(self.x.shape, sample_shape):
            raise ValueError(
                f"data is one picture of shape {self.x.shape} without a batch axis; the "
                "model takes batches of pictures. Pass a batch of this one picture, e.g. "
                "x[None] or np.expand_dims(x, 0)."
            )
        if self.x.ndim < 2:
            raise ValueError(
                f"Images must be an array of shape (samples, height, width, channels), "
                f"got shape {self.x.shape}."
            )
        self.y = None
        if y is not None:
            self.y = _check_labels(np.asarray(y))
            if len(self.y) != len(self.x):
                raise ValueError(
                    f"x has {len(self.x)} samples but y has {len(self.y)} labels; "
                    "they must have one label per sample."
                )
        if len(self.x) == 0:
            raise _empty_data()
        self.batch_size = batch_size
        self.image_shape = tuple(self.x.shape[1:])
        self.num_samples = len(self.x)
        self.class_names = None

    @property
    def has_labels(self) -> bool:
        return self.y is not None

    def batches(self, digest=None):
        for start in range(0, self.num_samples, self.batch_size):
            stop = start + self.batch_size
            yield self.x[start:stop], None if self.y is None else self.y[start:stop]

    def fingerprint(self) -> dict:
        """Content digests of the arrays (in order: rows come back in this order)."""
        parts = {"kind": self.kind, "batch_size": self.batch_size}
        for name, array in (("x", self.x), ("y", self.y)):
            parts[name] = None if array is None else {
                "shape": list(array.shape),
                "dtype": array.dtype.str,
                "sha256": _array_digest(array),
            }
        return parts

    def describe(self) -> dict:
        return {"kind": self.kind, "samples": self.num_samples, "image_shape": list(self.image_shape)}


class DatasetSource:
    """A `tf.data.Dataset` of images or (images, labels), iterated batch by batch.

    Each pass iterates the dataset once and keeps every image with its label,
    so a dataset that reshuffles on each iteration still gives matching pairs.
    """

    kind = "tf.data"
    reads_tf_data = True

    def __init__(self, dataset, batch_size: int | None, model_rank: int | None):
        tf = tensorflow()
        cardinality = int(dataset.cardinality())
        if cardinality == tf.data.INFINITE_CARDINALITY:
            raise ValueError(
                "data is an infinite dataset (it repeats without end, e.g. after "
                "`dataset.repeat()`), so extraction would never finish. Pass the dataset "
                "before `.repeat()`, or a finite part of it, e.g. `dataset.take(100)`."
            )
        if cardinality == 0:
            raise _empty_data()
        image_spec, label_spec = _tf_data.element_parts(dataset)
        rank = image_spec.shape.rank
        if rank is None:
            raise ValueError(
                "The dataset's images have an unknown rank; give them a static shape, "
                "e.g. with `dataset.map(lambda x, y: (tf.ensure_shape(x, (None, 150, 150, 3)), y))`."
            )
        sample_rank = (model_rank - 1) if model_rank else 3
        if rank == sample_rank:
            batched = False
        elif rank == sample_rank + 1:
            batched = True
        else:
            raise ValueError(
                f"The dataset yields images of shape {tuple(image_spec.shape)}; the model "
                f"takes samples of rank {sample_rank} (batches of rank {sample_rank + 1})."
            )
        self.original = dataset
        # `image_dataset_from_directory` sets `file_paths` on the dataset it
        # returns; any step added to it (map, prefetch...) gives a new dataset.
        paths = getattr(dataset, "file_paths", None)
        self.file_paths = list(paths) if isinstance(paths, (list, tuple)) else None
        self.class_names = getattr(dataset, "class_names", None)
        if self.class_names is not None:
            self.class_names = [str(name) for name in self.class_names]
        self.has_labels = label_spec is not None
        self.image_shape = tuple(image_spec.shape[1:] if batched else image_spec.shape)
        self.image_dtype = image_spec.dtype.name
        self.label_spec = label_spec
        if batched and batch_size is not None:
            dataset = dataset.unbatch().batch(batch_size)
        elif not batched:
            dataset = dataset.batch(batch_size or DEFAULT_BATCH_SIZE)
        self.dataset = dataset
        self.batch_size = batch_size or (None if batched else DEFAULT_BATCH_SIZE)
        self.content: str | None = None  # the key's content digest, once `fingerprint` read a pass
        self.num_samples = len(self.file_paths) if self.file_paths is not None else None
        if self.num_samples is None and not batched and cardinality >= 0:
            self.num_samples = cardinality

    def batches(self, digest: ContentDigest | None = None):
        """Yields ``(images, labels)`` NumPy batches of one pass, adding each to ``digest``."""
        count = 0
        for element in self.dataset:
            if isinstance(element, (tuple, list)):
                images = element[0]
                labels = element[1] if len(element) > 1 else None
            else:
                images, labels = element, None
            if labels is not None:
                labels = _check_labels(np.asarray(labels))
            images = np.asarray(images)
            count += len(images)
            if digest is not None:
                digest.add(images, labels)
            yield images, labels
        if count == 0:
            raise _empty_data()

    def fingerprint(self) -> dict:
        """The files' bytes and the pipeline, or the digest of the content of one pass.

        The first for a dataset as `image_dataset_from_directory` returns it:
        Keras' own pipeline, fully described by its graph. Any other
        dataset (mapped, prefetched, made from tensors...) is read once and
        keyed by the pairs it gave (`content`); the passes that compute the
        features must then give the same pairs (see `ContentDigest`).
        """
        parts = {
            "kind": self.kind,
            "image_shape": list(self.image_shape),
            "image_dtype": self.image_dtype,
            "label_spec": None
            if self.label_spec is None
            else [list(self.label_spec.shape[1:]), self.label_spec.dtype.name],
            "class_names": self.class_names,
        }
        if self.file_paths is not None:
            pipeline, own_batch_size = _tf_data.pipeline_digest(self.original, self.file_paths)
            if pipeline is not None and (self.batch_size or own_batch_size):
                parts["pipeline"] = pipeline
                parts["batch_size"] = self.batch_size or own_batch_size
                parts["files"] = files_digest(self.file_paths)
                return parts
        digest = ContentDigest()
        for _ in self.batches(digest):
            pass
        parts["content"] = self.content = digest.hexdigest()
        if self.num_samples is None:
            self.num_samples = digest.count
        return parts

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "files": None if self.file_paths is None else len(self.file_paths),
            "image_shape": list(self.image_shape),
            "class_names": self.class_names,
        }


class ContentDigest:
    """Order-free digest of the (image, label) pairs of a pass, with its batch sizes.

    Each pair is hashed alone and the sorted digests are hashed together,
    so a dataset that reshuffles gives the same digest every pass, while any
    changed pixel or label changes it; the batch sizes count too (a model
    may compute each row from its whole batch).
    """

    def __init__(self):
        self.pairs = []
        self.batch_sizes = []

    @property
    def count(self) -> int:
        return len(self.pairs)

    def add(self, images: np.ndarray, labels: np.ndarray | None) -> None:
        images = np.ascontiguousarray(images)
        self.batch_sizes.append(len(images))
        for i in range(len(images)):
            digest = hashlib.sha256(f"{images[i].shape}|{images.dtype.str}|".encode())
            digest.update(memoryview(images[i]).cast("B"))
            if labels is not None:
                digest.update(np.ascontiguousarray(labels[i]).tobytes())
            self.pairs.append(digest.digest())

    def hexdigest(self) -> str:
        total = hashlib.sha256(repr(self.batch_sizes).encode())
        total.update(b"".join(sorted(self.pairs)))
        return total.hexdigest()


def files_digest(file_paths, chunk_size: int = 1 << 20) -> str:
    """Digest of the sorted (absolute path, SHA-256 of the bytes) of each file.

    The bytes, not the size and modification time: a picture whose content
    changes while both stay the same (``cp -p``, ``rsync -t``, an archive
    unpacked again) changes the digest, and so does a swap of two files
    between class folders.
    """
    lines = []
    for path in file_paths:
        path = os.path.abspath(os.fspath(path))
        digest = hashlib.sha256()
        try:
            with open(path, "rb") as handle:
                while block := handle.read(chunk_size):
                    digest.update(block)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"The dataset lists {path!r}, which no longer exists; build the dataset "
                "again from the folder."
            ) from None
        lines.append(f"{path}\t{digest.hexdigest()}")
    lines.sort()
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def make_source(
    data, batch_size: int | None, input_shape: tuple | None
) -> ArraySource | DatasetSource:
    """Builds the source for ``data`` or raises a TypeError naming what is accepted.

    ``input_shape`` is the model's input shape, batch axis first, or None.
    """
    sample_shape = None if input_shape is None else tuple(input_shape[1:])
    if is_tf_dataset(data):
        return DatasetSource(data, batch_size, None if input_shape is None else len(input_shape))
    batch_size = batch_size or DEFAULT_BATCH_SIZE
    if isinstance(data, tuple):
        if len(data) == 1:
            return ArraySource(data[0], None, batch_size, sample_shape)
        if len(data) == 2:
            return ArraySource(data[0], data[1], batch_size, sample_shape)
        raise ValueError(
            f"data is a tuple of {len(data)} items; pass x or (x, y), not sample weights."
        )
    if isinstance(data, (dict, str, bytes, os.PathLike)) or not hasattr(data, "__len__"):
        raise TypeError(
            f"data must be a tf.data.Dataset (e.g. from keras.utils.image_dataset_from_directory), "
            f"a NumPy array of images or a tuple (images, labels); got {type(data).__name__}."
        )
    return ArraySource(data, None, batch_size, sample_shape)
