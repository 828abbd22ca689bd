"""`FeatureSet`: extracted features with their labels and class names."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from keras_smalldata import _arguments as args
from keras_smalldata._types import ArrayLike

if TYPE_CHECKING:
    import tensorflow as tf


class FeatureSet:
    """Features of a set of pictures, with their labels and class names.

    `extract_features` returns one. Row ``i`` of `features` goes with row
    ``i`` of `labels`. Features loaded from a cache are read-only memory
    maps: they stay on disk and only the rows you touch are read, so a
    feature set can be larger than memory. `as_dataset` streams them in
    batches; `numpy` loads them into memory.

    Args:
        features: Array of shape ``(samples, *feature_shape)``.
        labels: Array with one label per sample, or None.
        class_names: Names of the classes (index ``i`` names label ``i``), or None.
        cache_path: The cache entry the features come from or were written
            to, or None.
        from_cache: True when the features were loaded from the cache
            rather than computed.

    Attributes:
        features: The features (a NumPy array or a read-only memory map).
        labels: The labels or None.
        class_names: The class names or None.
        feature_shape: Shape of one sample's features, e.g. ``(4, 4, 512)``.
        cache_path: The cache entry folder or None.
        from_cache: Whether the features were loaded from the cache.

    Example:

    ```python
    features = FeatureSet(np.zeros((10, 4, 4, 512)), labels=np.arange(10) % 2)
    len(features), features.feature_shape
    # (10, (4, 4, 512))
    x, y = features.numpy()
    train = features.as_dataset(batch_size=4, shuffle=True, seed=0)
    ```
    """

    def __init__(
        self,
        features: ArrayLike,
        labels: ArrayLike | None = None,
        class_names: Sequence[str] | None = None,
        *,
        cache_path: str | Path | None = None,
        from_cache: bool = False,
    ) -> None:
        if not isinstance(features, np.ndarray):
            features = np.asarray(features)
        if features.ndim < 1:
            raise ValueError(
                f"features must have a sample axis first, got shape {features.shape}."
            )
        if labels is not None:
            if not isinstance(labels, np.ndarray):
                labels = np.asarray(labels)
            if len(labels) != len(features):
                raise ValueError(
                    f"features has {len(features)} rows but labels has {len(labels)}; "
                    "they must have one label per row."
                )
        self.features = features
        self.labels = labels
        self.class_names = None if class_names is None else [str(n) for n in class_names]
        self.cache_path = None if cache_path is None else Path(cache_path)
        self.from_cache = bool(from_cache)

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.features.shape[1:])

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def __repr__(self) -> str:
        labels = "no labels" if self.labels is None else f"labels {self.labels.dtype}"
        where = ""
        if self.cache_path is not None:
            where = f", {'loaded from' if self.from_cache else 'cached in'} {str(self.cache_path)!r}"
        return (
            f"<FeatureSet: {len(self)} samples, feature_shape={self.feature_shape}, "
            f"{labels}, class_names={self.class_names}{where}>"
        )

    def numpy(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Returns ``(features, labels)`` as NumPy arrays in memory.

        Memory-mapped features are read into memory (a copy); use
        `as_dataset` to stream a feature set larger than memory. ``labels``
        is None when the feature set has none.

        Returns:
            A tuple ``(features, labels)``, ready for ``model.fit(x, y)``.
        """
        labels = None if self.labels is None else np.array(self.labels)
        return np.array(self.features), labels

    def as_dataset(
        self,
        batch_size: int = 32,
        *,
        shuffle: bool = False,
        seed: int | None = None,
    ) -> tf.data.Dataset:
        """Returns a `tf.data.Dataset` of batches of ``(features, labels)``.

        Rows are read batch by batch, so it streams a feature set larger than
        memory. A feature set without labels gives batches of features.

        Args:
            batch_size: Samples per batch (the last batch may be shorter).
            shuffle: Whether to shuffle the samples (a new order each epoch).
            seed: Seed of the shuffle, for a reproducible order.

        Returns:
            A `tf.data.Dataset` for ``model.fit`` or ``model.predict``.

        Example:

        ```python
        train = features.as_dataset(batch_size=20, shuffle=True)
        model.fit(train, epochs=30)
        ```
        """
        from keras_smalldata._backend import tensorflow

        args.check_positive_int("batch_size", batch_size)
        args.check_bool("shuffle", shuffle)
        args.check_seed(seed)
        tf = tensorflow()
        features, labels = self.features, self.labels
        dataset = tf.data.Dataset.range(len(self))
        if shuffle:
            dataset = dataset.shuffle(max(1, len(self)), seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.batch(int(batch_size))
        feature_spec = tf.TensorSpec((None,) + self.feature_shape, tf.as_dtype(features.dtype))
        if labels is None:

            def gather(indices):
                return np.ascontiguousarray(features[indices])

            def read(indices):
                indices = tf.sort(indices)
                out = tf.numpy_function(gather, [indices], feature_spec.dtype, stateful=False)
                return tf.ensure_shape(out, feature_spec.shape)

            return dataset.map(read).prefetch(tf.data.AUTOTUNE)

        label_spec = tf.TensorSpec((None,) + labels.shape[1:], tf.as_dtype(labels.dtype))

        def gather_pair(indices):
            return (
                np.ascontiguousarray(features[indices]),
                np.ascontiguousarray(labels[indices]),
            )

        def read_pair(indices):
            indices = tf.sort(indices)
            x, y = tf.numpy_function(
                gather_pair, [indices], [feature_spec.dtype, label_spec.dtype], stateful=False
            )
            return tf.ensure_shape(x, feature_spec.shape), tf.ensure_shape(y, label_spec.shape)

        return dataset.map(read_pair).prefetch(tf.data.AUTOTUNE)
