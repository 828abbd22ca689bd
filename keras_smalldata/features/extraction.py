"""`extract_features`: run a frozen model once over a dataset, exactly, with a disk cache."""

from __future__ import annotations

import dataclasses
import os
import time
import warnings
from collections.abc import Callable, Sequence

import keras
import ml_dtypes
import numpy as np

from keras_smalldata import _arguments as args
from keras_smalldata._types import Data
from keras_smalldata.features._augmentation import augment, random_layers, seeded
from keras_smalldata.features._forward import make_forward
from keras_smalldata.features._sources import (
    ArraySource,
    ContentDigest,
    DatasetSource,
    _empty_data,
    make_source,
)
from keras_smalldata.features.cache import (
    CacheNotUsedWarning,
    FeatureCache,
    StaleCacheWarning,
)
from keras_smalldata.features.feature_set import FeatureSet
from keras_smalldata.features.fingerprint import (
    FORMAT_VERSION,
    config_digest,
    digest_json,
    environment,
    unvouched,
    weights_digest,
)


def extract_features(
    model: keras.Model,
    data: Data,
    *,
    batch_size: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    cache_key: str | None = None,
    augmentation: Callable | None = None,
    augment_rounds: int = 0,
    include_original: bool = True,
    seed: int | None = None,
    require_labels: bool = False,
    class_names: Sequence[str] | None = None,
    verbose: int = 1,
) -> FeatureSet:
    """Runs a model once over every sample and returns the features with their labels.

    Every sample is used exactly once per pass, whatever the batch size, and
    each feature row keeps its own label, even for a dataset that
    reshuffles. The model is called with ``training=False`` on the images as
    they come, cast to its input dtype: its preprocessing must be inside it
    (as in a `PretrainedBase`). With ``cache_dir``, the features are written
    to disk as they are computed and loaded back when nothing changed; where
    the cache's key cannot vouch for the result, the features are computed
    without it, with a `CacheNotUsedWarning` saying why. The
    feature-extraction guide tells what the key holds.

    Args:
        model: A Keras model (or layer) with one image input and one output,
            e.g. a `PretrainedBase`.
        data: A finite `tf.data.Dataset` of images or of ``(images,
            labels)``, batched or not, or NumPy arrays ``images`` or
            ``(images, labels)``.
        batch_size: Samples per forward pass. Default: the dataset's own
            batches, or 32 for arrays and unbatched datasets.
        cache_dir: Folder of the feature cache (created if missing), or None
            to keep the features in memory only.
        cache_key: A name of your own for what the cache's key cannot read
            (code of yours, unseeded augmentation), e.g. ``"my-layers-v2"``:
            change it whenever that code changes. Needs ``cache_dir``.
        augmentation: A Keras layer (called with ``training=True``) or a
            function, applied to each batch of images in augmented passes.
        augment_rounds: Number of augmented passes over the data (0: none).
        include_original: Whether to add a plain pass before the augmented
            ones.
        seed: Seeds the random layers of ``augmentation`` for the call, so
            that augmented passes are reproducible (and cacheable).
        require_labels: If True, data without labels is an error.
        class_names: Names of the classes, overriding those of the dataset.
        verbose: 0 (silent), 1 (progress bar with samples/s) or 2 (one line
            at the end).

    Returns:
        A `FeatureSet` of ``(include_original + augment_rounds) * samples``
        rows, with ``features``, ``labels`` (None without labels),
        ``class_names`` and ``feature_shape``.

    Raises:
        ValueError: For empty or infinite data, missing labels with
            ``require_labels=True``, images of another size than the
            model's input, or inconsistent arguments.
        TypeError: For data, a model or a ``cache_dir`` of an unsupported type.
        PermissionError: When ``cache_dir`` cannot be written to.
        OSError: When writing the cache fails (a full disk), naming the folder.

    Example:

    ```python
    base = PretrainedBase("vgg16", input_shape=(150, 150, 3))
    train = keras.utils.image_dataset_from_directory(
        "cats_and_dogs_small/train", image_size=(150, 150), label_mode="binary")
    features = extract_features(base, train, cache_dir="feature_cache")
    features.feature_shape
    # (4, 4, 512)
    ```
    """
    _check_arguments(
        model, batch_size, cache_dir, cache_key, augmentation, augment_rounds,
        include_original, seed, require_labels, class_names, verbose,
    )
    input_shape, input_dtype = _model_input(model)
    source = make_source(data, None if batch_size is None else int(batch_size), input_shape)
    if require_labels and not source.has_labels:
        raise ValueError(
            "require_labels=True but data has no labels: pass (images, labels), e.g. a "
            "dataset from image_dataset_from_directory with labels='inferred', or (x, y) "
            "arrays."
        )
    _check_image_shape(source.image_shape, input_shape)
    extraction = _Extraction(
        model=model,
        source=source,
        augmentation=augmentation if augment_rounds else None,
        passes=[False] * int(include_original) + [True] * int(augment_rounds),
        seed=None if seed is None else int(seed),
        class_names=source.class_names if class_names is None else [str(n) for n in class_names],
        dtype=input_dtype,
        verbose=verbose,
    )
    if cache_dir is None:
        return extraction.into_memory()
    return _extract_with_cache(extraction, FeatureCache(cache_dir), cache_key)


@dataclasses.dataclass
class _Extraction:
    """The inputs of one `extract_features` call, and the work on them."""

    model: keras.layers.Layer
    source: ArraySource | DatasetSource
    augmentation: Callable | None
    passes: list
    seed: int | None
    class_names: list | None
    dtype: str
    verbose: int

    def __post_init__(self):
        # What in the model the key cannot vouch for: such a model is also
        # compiled afresh on every call.
        self.model_reasons, self.packages = unvouched(self.model)
        self.config = None

    def reasons(self) -> list[str]:
        """Why the key cannot vouch for this call's result (empty: it can)."""
        reasons = [f"the model's {reason}" for reason in self.model_reasons]
        augmentation = self.augmentation
        if isinstance(augmentation, keras.layers.Layer):
            reasons += [f"the augmentation's {r}" for r in unvouched(augmentation, False)[0]]
            if self.seed is None and random_layers(augmentation):
                reasons.append(
                    "augment_rounds draws new augmentations on every call without seed= "
                    "(as an uncached call does), and a cached entry would give the first "
                    "call's draws again; pass seed= to reproduce the draws, and cache them"
                )
        elif augmentation is not None:
            name = getattr(augmentation, "__qualname__", type(augmentation).__qualname__)
            reasons.append(f"the augmentation is a function ({name}), code of yours")
        return reasons

    def fingerprint(self, cache_key: str | None) -> str:
        self.config = config_digest(self.model)
        augmentation = self.augmentation
        return digest_json(
            {
                "format_version": FORMAT_VERSION,
                "environment": {
                    **environment(self.source.reads_tf_data), "packages": self.packages
                },
                "model": {"config": self.config, "weights": weights_digest(self.model)},
                "data": self.source.fingerprint(),
                "class_names": self.class_names,
                "augmentation": None if not isinstance(augmentation, keras.layers.Layer) else {
                    "config": config_digest(augmentation),
                    "weights": weights_digest(augmentation),
                },
                "passes": self.passes,
                "seed": self.seed if augmentation is not None else None,
                "cache_key": cache_key,
            }
        )

    def forward(self):
        return make_forward(self.model, self.dtype, cached=not self.model_reasons)

    def run_passes(self, sink) -> bool:
        """Runs every pass, appending ``(features, labels, inputs)`` batches to ``sink``.

        Returns False when the data is keyed by its content and a pass gave
        other pairs than the pass that made the key (a random pipeline).
        """
        source = self.source
        forward = self.forward()
        total = None if source.num_samples is None else source.num_samples * len(self.passes)
        progress = _Progress(total, self.verbose)
        same = True
        with seeded(self.augmentation, self.seed):
            for augmented in self.passes:
                digest = None if source.content is None else ContentDigest()
                for images, labels in source.batches(digest):
                    if augmented:
                        images = keras.ops.convert_to_numpy(augment(self.augmentation, images))
                    features = forward(images)
                    if len(features) != len(images):
                        raise ValueError(
                            f"The model returned {len(features)} rows for a batch of "
                            f"{len(images)} images; its output must keep the batch axis."
                        )
                    if source.has_labels and labels is None:
                        raise ValueError("Some batches of the dataset have no labels.")
                    sink.append(features, labels if source.has_labels else None, images)
                    progress.add(len(features))
                same = same and (digest is None or digest.hexdigest() == source.content)
        progress.finish()
        return same

    def still_computes(self, features: np.ndarray, inputs: np.ndarray | None) -> bool:
        """Whether the model gives ``features`` on ``inputs`` again (True without inputs)."""
        if inputs is None:
            return True
        stored = np.asarray(features[: len(inputs)])
        current = self.forward()(inputs)
        if current.shape != stored.shape:
            return False
        try:
            eps = float(ml_dtypes.finfo(stored.dtype).eps)
        except (TypeError, ValueError):
            eps = 0.0  # integers and booleans: exact
        finite = np.abs(stored[np.isfinite(stored)])
        tolerance = max(1e-4, 8 * eps) * (float(finite.max()) if finite.size else 0.0)
        return bool(np.allclose(current, stored, rtol=0, atol=tolerance, equal_nan=True))

    def description(self, cache_key: str | None) -> dict:
        """What the manifest says about the inputs (for people reading it)."""
        model = self.model
        return {
            "model": {"name": model.name, "class": type(model).__name__},
            "data": self.source.describe(),
            "augmentation": None if self.augmentation is None else type(self.augmentation).__name__,
            "augment_rounds": sum(self.passes),
            "include_original": self.passes[0] is False,
            "seed": self.seed,
            "cache_key": cache_key,
        }

    def into_memory(self) -> FeatureSet:
        rows = _MemoryRows(
            None if self.source.num_samples is None
            else self.source.num_samples * len(self.passes)
        )
        self.run_passes(rows)
        features, labels = rows.arrays()
        return FeatureSet(features, labels, self.class_names)


def _extract_with_cache(
    extraction: _Extraction, cache: FeatureCache, cache_key: str | None
) -> FeatureSet:
    reasons = extraction.reasons()
    if reasons and cache_key is None:
        warnings.warn(
            "The feature cache is not used for this call: its key (the data's content, "
            "the layers' configurations and weights, the seed, the versions) cannot vouch "
            f"for the result, because {'; and '.join(reasons)}. The features are computed "
            "without the cache. To cache them anyway, pass cache_key='a name for this "
            "version of your code' (your promise: change it whenever that code changes).",
            CacheNotUsedWarning,
            stacklevel=3,
        )
        return extraction.into_memory()
    key = extraction.fingerprint(cache_key)
    found = cache.load(key)
    replaces = None
    if found is not None:
        feature_set, manifest = found
        if extraction.still_computes(feature_set.features, manifest["check_inputs"]):
            if extraction.verbose:
                print(
                    f"Loaded features of {len(feature_set)} samples, shape "
                    f"{feature_set.feature_shape}, from the cache {str(feature_set.cache_path)!r}."
                )
            return feature_set
        warnings.warn(
            f"The feature cache entry {str(feature_set.cache_path)!r}, made under "
            f"cache_key={cache_key!r}, does not match the model any more: on the first "
            "batch stored with it, the model gives other features now, so its code changed "
            "(or is random) while the key stayed the same. Computing the features again; "
            "change cache_key whenever your code changes.",
            StaleCacheWarning,
            stacklevel=3,
        )
        replaces = manifest["features"]["file"]
    cache.check_writable()
    with_check = cache_key is not None and bool(extraction.model_reasons)
    writer = cache.writer(key, extraction.source.has_labels, with_check)
    try:
        if extraction.run_passes(writer):
            return writer.commit(
                extraction.class_names, extraction.description(cache_key), replaces
            )
        features, labels = writer.arrays()
    except BaseException:
        writer.discard()
        raise
    warnings.warn(
        "The feature cache is not used for this call: the dataset gave other pictures or "
        "labels on this pass than on the pass that made the key (random operations in "
        "it, such as tf.image.random_flip_left_right in a map), so no key names its "
        "result, and the next call draws anew, as an uncached call does. To cache "
        "augmented features, put the random layers in augmentation= and pass seed=.",
        CacheNotUsedWarning,
        stacklevel=3,
    )
    return FeatureSet(features, labels, extraction.class_names)


def _check_arguments(
    model, batch_size, cache_dir, cache_key, augmentation, augment_rounds,
    include_original, seed, require_labels, class_names, verbose,
) -> None:
    if not isinstance(model, keras.layers.Layer):
        raise TypeError(
            f"model must be a Keras model (e.g. keras.applications.VGG16(include_top=False)) "
            f"or layer, got {type(model).__name__}."
        )
    args.check_int("batch_size", batch_size, minimum=1, allow_none=True)
    if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
        raise TypeError(
            f"cache_dir={cache_dir!r} must be a folder path, a str or pathlib.Path such "
            "as 'feature_cache', or None to keep the features in memory only."
        )
    if isinstance(cache_dir, str) and not cache_dir.strip():
        raise ValueError(
            f"cache_dir={cache_dir!r} is empty; pass a folder such as 'feature_cache', or "
            "None to keep the features in memory only."
        )
    if cache_key is not None:
        if not isinstance(cache_key, str):
            raise TypeError(
                f"cache_key={cache_key!r} must be a str naming your code's version, e.g. "
                "'my-layers-v2', or None."
            )
        if not cache_key.strip():
            raise ValueError(
                f"cache_key={cache_key!r} is empty; pass a name for your code's version, "
                "e.g. 'my-layers-v2', or None."
            )
        if cache_dir is None:
            raise ValueError(
                f"cache_key={cache_key!r} names a cache entry, but cache_dir=None: pass "
                "cache_dir= too, e.g. cache_dir='feature_cache'."
            )
    args.check_int("augment_rounds", augment_rounds, minimum=0)
    if augmentation is not None and not callable(augmentation):
        raise TypeError(
            f"augmentation={augmentation!r} must be a Keras layer or a function of a batch "
            "of images."
        )
    if augment_rounds and augmentation is None:
        raise ValueError(
            f"augment_rounds={augment_rounds} needs augmentation=, e.g. "
            "keras.Sequential([keras.layers.RandomFlip('horizontal'), "
            "keras.layers.RandomRotation(0.1)])."
        )
    if augmentation is not None and not augment_rounds:
        raise ValueError(
            "augmentation= is given but augment_rounds=0, so it would not be used; pass "
            "augment_rounds=1 or more (the number of augmented passes)."
        )
    args.check_bool("include_original", include_original)
    if not include_original and not augment_rounds:
        raise ValueError(
            "include_original=False with augment_rounds=0 leaves nothing to extract."
        )
    args.check_seed(seed)
    args.check_bool("require_labels", require_labels)
    if class_names is not None and (
        isinstance(class_names, str) or not all(isinstance(n, str) for n in class_names)
    ):
        raise TypeError(f"class_names={class_names!r} must be a list of strings.")
    args.check_choice("verbose", verbose, (0, 1, 2))


def _model_input(model) -> tuple[tuple | None, str]:
    """The model's input shape (with the batch axis) and dtype; None if not known."""
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        return None, "float32"
    if len(inputs) != 1:
        raise ValueError(
            f"The model has {len(inputs)} inputs; extract_features needs a model with "
            "one image input."
        )
    shape = tuple(inputs[0].shape)
    dtype = keras.backend.standardize_dtype(inputs[0].dtype)
    if not dtype.startswith(("float", "bfloat")):
        dtype = "float32"
    return shape, dtype


def _check_image_shape(image_shape: tuple, input_shape: tuple | None) -> None:
    if input_shape is None:
        return
    expected = tuple(input_shape[1:])
    mismatch = len(image_shape) != len(expected) or any(
        a is not None and b is not None and a != b for a, b in zip(image_shape, expected)
    )
    if mismatch:
        hint = ""
        if len(expected) == 3 and expected[0] and expected[1]:
            hint = (
                f" Resize the pictures to {expected[0]}x{expected[1]}, e.g. "
                f"image_size=({expected[0]}, {expected[1]}) in "
                "keras.utils.image_dataset_from_directory, or build the model for "
                f"input_shape={tuple(image_shape)}."
            )
        raise ValueError(
            f"The images have shape {tuple(image_shape)} but the model takes inputs of "
            f"shape {expected} (height, width, channels).{hint}"
        )


class _Progress:
    """A `keras.utils.Progbar` of samples with samples/s; without a total if unknown."""

    def __init__(self, total: int | None, verbose: int):
        self.bar = None
        if verbose:
            self.bar = keras.utils.Progbar(
                total, verbose=verbose, unit_name="sample", stateful_metrics=["samples/s"]
            )
        self.total = total
        self.count = 0
        self.start = time.perf_counter()

    def _rate(self) -> float:
        return self.count / max(time.perf_counter() - self.start, 1e-9)

    def add(self, samples: int) -> None:
        self.count += samples
        if self.bar is not None:
            self.bar.update(self.count, values=[("samples/s", self._rate())])

    def finish(self) -> None:
        if self.bar is not None and self.total is None:
            self.bar.update(self.count, values=[("samples/s", self._rate())], finalize=True)


class _MemoryRows:
    """Collects feature and label rows in memory (when there is no cache)."""

    def __init__(self, total: int | None):
        self.total = total
        self.features: np.ndarray | None = None
        self.labels: np.ndarray | None = None
        self.count = 0

    def _grow(self, buffer, rows, needed):
        if buffer is None:
            capacity = max(needed, self.total or 0)
            buffer = np.empty((capacity,) + rows.shape[1:], rows.dtype)
        elif needed > len(buffer):
            bigger = np.empty((max(needed, 2 * len(buffer)),) + buffer.shape[1:], buffer.dtype)
            bigger[: self.count] = buffer[: self.count]
            buffer = bigger
        return buffer

    def append(self, features, labels, inputs=None) -> None:
        needed = self.count + len(features)
        self.features = self._grow(self.features, features, needed)
        self.features[self.count : needed] = features
        if labels is not None:
            self.labels = self._grow(self.labels, labels, needed)
            self.labels[self.count : needed] = labels
        self.count = needed

    def arrays(self):
        if self.features is None:
            raise _empty_data()  # no batch came: the sources refuse empty data first
        features = self.features[: self.count]
        if len(self.features) != self.count:
            features = features.copy()
        labels = None if self.labels is None else self.labels[: self.count].copy()
        return features, labels
