"""`extract_features`: run a frozen model once over a dataset, exactly, with a disk cache."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Sequence

import keras
import numpy as np

from keras_smalldata import _arguments as args
from keras_smalldata._backend import backend_name
from keras_smalldata.features._forward import make_forward
from keras_smalldata.features._sources import make_source
from keras_smalldata.features.cache import FeatureCache
from keras_smalldata.features.feature_set import FeatureSet
from keras_smalldata.features.fingerprint import (
    FORMAT_VERSION,
    augmentation_fingerprint,
    digest_json,
    model_fingerprint,
)


def extract_features(
    model: keras.Model,
    data,
    *,
    batch_size: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    augmentation: Callable | None = None,
    augment_rounds: int = 0,
    include_original: bool = True,
    seed: int | None = None,
    require_labels: bool = False,
    class_names: Sequence[str] | None = None,
    jit_compile: bool | str = "auto",
    verbose: int = 1,
) -> FeatureSet:
    """Runs a model once over every sample and returns the features with their labels.

    This is the fast recipe for small datasets: a frozen conv base (for
    example a `keras.applications` model with ``include_top=False``) turns
    each picture into features once, and a small dense classifier then
    trains on those features in seconds (see
    `keras_smalldata.pretrained.classifier_model`).

    Every sample is used exactly once per pass, whatever the batch size, and
    each feature row keeps its own label, also for a dataset that
    reshuffles on every iteration (such as
    `keras.utils.image_dataset_from_directory` with ``shuffle=True``): the
    dataset is iterated once per pass and the pairs are kept as they come.
    The rows are in the order of that pass.

    The model is called with ``training=False`` (Dropout off,
    BatchNormalization in inference mode). Images are given to it as they
    come from ``data``, cast to the model's input dtype: a base whose
    preprocessing is not inside it needs that preprocessing in ``data``
    (for example ``keras.applications.vgg16.preprocess_input`` for VGG16,
    which expects 0-255 RGB).

    With ``cache_dir``, the features are written to disk batch by batch, in
    ``.npy`` files that are read back as memory maps: memory use does not
    grow with the number of samples. The entry is keyed by a fingerprint of
    everything that changes the result: the model's architecture (layer
    names that Keras numbers automatically do not count) and all its weight
    values, the data (for an `image_dataset_from_directory` dataset: each
    file's path, size and modification time, and the dataset's pipeline
    (image size, interpolation, cropping, labels); otherwise a digest of the
    contents of every sample), the augmentation, ``augment_rounds``,
    ``include_original`` and ``seed``. The same inputs load the features
    from the cache; anything changed computes them again. An interrupted
    extraction leaves nothing that is taken for a complete entry, and a
    damaged entry is computed again with a `CorruptedCacheWarning`.

    Args:
        model: Any single-input, single-output Keras model (or layer), e.g.
            ``keras.applications.VGG16(include_top=False, input_shape=(150, 150, 3))``
            or a `PretrainedBase`.
        data: A `tf.data.Dataset` of images or of ``(images, labels)``,
            batched or not (as `keras.utils.image_dataset_from_directory`
            gives it; its ``class_names`` are carried along); or NumPy
            arrays: ``x`` or a tuple ``(x, y)``.
        batch_size: Samples per forward pass. Default: the dataset's own
            batches, or 32 for arrays and unbatched datasets. Given for a
            batched dataset, it re-batches the dataset.
        cache_dir: Folder of the feature cache, or None to keep the
            features in memory only. Created if missing.
        augmentation: A Keras layer (e.g. a `keras.Sequential` of
            ``RandomFlip``, ``RandomRotation``...) or a function, applied to
            each batch of images before the model in augmented passes.
            Layers are called with ``training=True``.
        augment_rounds: Number of augmented passes over the data (0: none).
            Each pass draws new augmentations, so ``k`` rounds give ``k``
            different versions of each picture: the cheap middle ground
            between plain extraction and training end to end.
        include_original: Whether to add a plain (not augmented) pass
            before the augmented ones. The result has
            ``(include_original + augment_rounds) * samples`` rows.
        seed: With augmentation, makes the augmented passes reproducible:
            the random generators of the Keras layers in ``augmentation`` are
            set from it for the extraction (and restored after).
        require_labels: If True, data without labels is an error.
        class_names: Names of the classes, overriding those of the dataset
            (useful with arrays).
        jit_compile: Whether to compile the model with XLA (TensorFlow
            backend). "auto" (default) uses XLA when every layer allows it
            and falls back to a plain `tf.function` if compilation fails
            (on a CPU both ran VGG16 at the same speed in the benchmark).
            True requires XLA, False never uses it.
        verbose: 0 for silence, 1 for a progress bar with samples/s, 2 for
            one line at the end.

    Returns:
        A `FeatureSet` with ``features``, ``labels`` (None without
        labels), ``class_names`` and ``feature_shape``; see
        `FeatureSet.as_dataset` and `FeatureSet.numpy`.

    Raises:
        ValueError: for empty data, missing labels with
            ``require_labels=True``, images whose size differs from the
            model's input, or inconsistent arguments.
        TypeError: for data or a model of an unsupported type.
        PermissionError: when ``cache_dir`` cannot be written to.

    Example:

    ```python
    base = keras.applications.VGG16(
        weights="imagenet", include_top=False, input_shape=(150, 150, 3))
    train = keras.utils.image_dataset_from_directory(
        "cats_and_dogs_small/train", image_size=(150, 150), label_mode="binary")
    train = train.map(
        lambda x, y: (keras.applications.vgg16.preprocess_input(x), y))
    features = extract_features(base, train, cache_dir="feature_cache")
    features.feature_shape
    # (4, 4, 512)
    ```
    """
    _check_arguments(
        model, batch_size, augmentation, augment_rounds, include_original, seed,
        require_labels, class_names, verbose,
    )
    args.check_choice("jit_compile", jit_compile, (True, False, "auto"))
    augment_rounds = int(augment_rounds)
    batch_size = None if batch_size is None else int(batch_size)
    seed = None if seed is None else int(seed)
    input_shape, input_dtype = _model_input(model)
    source = make_source(data, batch_size, None if input_shape is None else len(input_shape))
    if source.num_samples == 0 or getattr(source, "known_empty", False):
        raise ValueError("data is empty: there are no samples to extract features from.")
    if require_labels and not source.has_labels:
        raise ValueError(
            "require_labels=True but data has no labels: pass (images, labels), e.g. a "
            "dataset from image_dataset_from_directory with labels='inferred', or (x, y) "
            "arrays."
        )
    _check_image_shape(source.image_shape, input_shape)
    if class_names is not None:
        class_names = [str(name) for name in class_names]
    else:
        class_names = source.class_names
    passes = [False] * int(include_original) + [True] * augment_rounds

    cache = writer = None
    if cache_dir is not None:
        cache = FeatureCache(cache_dir)
        augmentation_part = augmentation_fingerprint(augmentation if augment_rounds else None)
        if augmentation_part is None:
            warnings.warn(
                f"Cannot fingerprint augmentation={augmentation!r} (no source code to "
                "read); the feature cache is not used for this call.",
                stacklevel=2,
            )
            cache = None
    if cache is not None:
        fingerprint = digest_json(
            {
                "format_version": FORMAT_VERSION,
                "keras": keras.__version__,
                "backend": backend_name(),
                "model": model_fingerprint(model),
                "data": source.fingerprint(),
                "class_names": class_names,
                "augmentation": augmentation_part,
                "augment_rounds": augment_rounds,
                "include_original": include_original,
                "seed": seed if augment_rounds else None,
            }
        )
        cached = cache.load(fingerprint)
        if cached is not None:
            if verbose:
                print(
                    f"Loaded features of {len(cached)} samples, shape {cached.feature_shape}, "
                    f"from the cache {str(cached.cache_path)!r}."
                )
            return cached
        if source.num_samples == 0:
            raise ValueError("data is empty: there are no samples to extract features from.")
        cache.check_writable()
        writer = cache.writer(fingerprint, with_labels=source.has_labels)

    image_shape = tuple(source.image_shape)
    forward = make_forward(model, image_shape, input_dtype, jit_compile)
    total = None if source.num_samples is None else source.num_samples * len(passes)
    rows = None if writer is not None else _MemoryRows(total)
    sink = writer if writer is not None else rows
    try:
        with _seeded(augmentation if augment_rounds else None, seed):
            count = _run_passes(source, forward, augmentation, passes, sink, total, verbose)
        if count == 0:
            raise ValueError("data is empty: there are no samples to extract features from.")
        if writer is not None:
            description = {
                "model": {"name": model.name, "class": type(model).__name__, "input_shape": input_shape},
                "data": source.describe(),
                "augmentation": None if not augment_rounds else type(augmentation).__name__,
                "augment_rounds": augment_rounds,
                "include_original": include_original,
                "seed": seed,
            }
            return writer.commit(class_names, description)
    except BaseException:
        if writer is not None:
            writer.discard()
        raise
    features, labels = rows.arrays()
    return FeatureSet(features, labels, class_names)


def _check_arguments(
    model, batch_size, augmentation, augment_rounds, include_original, seed,
    require_labels, class_names, verbose,
) -> None:
    if not isinstance(model, keras.layers.Layer):
        raise TypeError(
            f"model must be a Keras model (e.g. keras.applications.VGG16(include_top=False)) "
            f"or layer, got {type(model).__name__}."
        )
    args.check_int("batch_size", batch_size, minimum=1, allow_none=True)
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


class _MemoryRows:
    """Collects feature and label rows in memory (when there is no cache)."""

    def __init__(self, total: int | None):
        self.total = total
        self.features = self.labels = None
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

    def append(self, features, labels) -> None:
        needed = self.count + len(features)
        self.features = self._grow(self.features, features, needed)
        self.features[self.count : needed] = features
        if labels is not None:
            self.labels = self._grow(self.labels, labels, needed)
            self.labels[self.count : needed] = labels
        self.count = needed

    def arrays(self):
        features = self.features[: self.count]
        if len(self.features) != self.count:
            features = features.copy()
        labels = None if self.labels is None else self.labels[: self.count].copy()
        return features, labels


def _run_passes(source, forward, augmentation, passes, sink, total, verbose) -> int:
    progbar = None
    if verbose:
        progbar = keras.utils.Progbar(
            total, verbose=verbose, unit_name="sample", stateful_metrics=["samples/s"]
        )
    count = 0
    start = time.perf_counter()
    for augmented in passes:
        for images, labels in source.batches():
            if augmented:
                images = _augment(augmentation, images)
            features = forward(images)
            if len(features) != len(images):
                raise ValueError(
                    f"The model returned {len(features)} rows for a batch of {len(images)} "
                    "images; its output must keep the batch axis."
                )
            if source.has_labels and labels is None:
                raise ValueError("Some batches of the dataset have no labels.")
            sink.append(features, labels if source.has_labels else None)
            count += len(features)
            if progbar is not None:
                rate = count / max(time.perf_counter() - start, 1e-9)
                progbar.update(count, values=[("samples/s", rate)])
    if progbar is not None and total is None:
        rate = count / max(time.perf_counter() - start, 1e-9)
        progbar.update(count, values=[("samples/s", rate)], finalize=True)
    return count


def _augment(augmentation, images):
    if isinstance(augmentation, keras.layers.Layer):
        return augmentation(images, training=True)
    return augmentation(images)


class _seeded:
    """Sets the random generators of a Keras augmentation from ``seed``, then restores them."""

    def __init__(self, augmentation, seed):
        self.states = []
        if seed is not None and isinstance(augmentation, keras.layers.Layer):
            weights = {id(w) for w in augmentation.weights}
            self.states = [
                v
                for v in augmentation.variables
                if id(v) not in weights and tuple(v.shape) == (2,) and "seed" in v.name
            ]
        self.seed = seed
        self.saved = []

    def __enter__(self):
        for i, state in enumerate(self.states):
            value = np.asarray(state.numpy())
            self.saved.append(value)
            first = (int(self.seed) + 1_000_003 * i) % (2**31 - 1)
            state.assign(np.array([first, 0], dtype=value.dtype))
        return self

    def __exit__(self, *exc):
        for state, value in zip(self.states, self.saved):
            state.assign(value)
        return False
