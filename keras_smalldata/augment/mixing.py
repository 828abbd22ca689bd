"""MixUp and CutMix on (images, labels) batches, built on Keras' own layers."""

from __future__ import annotations

import keras
import numpy as np

from keras_smalldata import _arguments as args
from keras_smalldata import _backend
from keras_smalldata.augment import _tf_data, _tf_data_random

MIXING_KINDS = ("mixup", "cutmix", "mixup_or_cutmix")
LABEL_MODES = ("int", "categorical", "binary")
# Beta(alpha, alpha) parameters used when `alpha=None`: Keras' MixUp default
# (and the MixUp paper's ImageNet value), and the CutMix paper's 1 (a uniform
# mixing weight).
DEFAULT_ALPHA = {"mixup": 0.2, "cutmix": 1.0}


def _keras_layer(name: str):
    layer = getattr(keras.layers, name, None)
    if layer is None:
        raise ImportError(
            f"mixing_augmentation needs keras.layers.{name}, which this Keras "
            f"({keras.__version__}) does not have; it is in Keras 3.8 and later: "
            'pip install -U "keras>=3.10".'
        )
    return layer


def _is_tensorflow_tensor(x) -> bool:
    return (type(x).__module__ or "").startswith("tensorflow")


def _check_class_indices(labels, num_classes: int):
    """``labels`` unchanged, after checking that every class index is in range.

    Concrete values are checked at once (ValueError); inside a ``tf.data``
    graph the check is an assertion that fails when the batch is read.
    """
    message = (
        f"label_mode='int' takes class indices from 0 to {num_classes - 1} "
        f"(num_classes={num_classes})"
    )
    if _is_tensorflow_tensor(labels):
        tf = _backend.tensorflow()
        if not tf.executing_eagerly():
            checks = [
                tf.debugging.assert_non_negative(labels, message=message),
                tf.debugging.assert_less(
                    labels, tf.cast(num_classes, labels.dtype), message=message
                ),
            ]
            with tf.control_dependencies(checks):
                return tf.identity(labels)
    try:
        values = keras.ops.convert_to_numpy(labels)
    except Exception:  # a traced value (jax.jit...): nothing concrete to check
        return labels
    bad = values[(values < 0) | (values >= num_classes)]
    if bad.size:
        raise ValueError(
            f"{message}; received {sorted(set(bad.tolist()))[:5]} in labels. Set "
            "num_classes to the number of classes of the softmax head."
        )
    return labels


class MixingAugmentation:
    """MixUp / CutMix for ``dataset.map`` on ``(images, labels)`` batches.

    Made by `mixing_augmentation`; see there. Calling it with a batch of
    images and their labels returns ``(mixed_images, soft_labels)``.

    Attributes:
        kind: ``"mixup"``, ``"cutmix"`` or ``"mixup_or_cutmix"``.
        num_classes: Number of classes (None for ``label_mode="binary"``).
        label_mode: ``"int"``, ``"categorical"`` or ``"binary"``.
        alpha: Dict of the Beta(alpha, alpha) parameter of each method used.
        seed: The seed, or None.
        layers: The Keras layers doing the mixing (``keras.layers.MixUp``,
            ``keras.layers.CutMix``).
    """

    def __init__(self, kind, num_classes, label_mode, alpha, seed):
        self.kind = kind
        self.num_classes = num_classes
        self.label_mode = label_mode
        self.alpha = alpha
        self.seed = seed
        self.layers = []
        self.mixup = self.cutmix = None
        if "mixup" in alpha:
            self.mixup = _keras_layer("MixUp")(alpha=alpha["mixup"], seed=seed)
            self.layers.append(self.mixup)
        if "cutmix" in alpha:
            cutmix_alpha = alpha["cutmix"]
            self.cutmix = _keras_layer("CutMix")(
                factor=(cutmix_alpha, cutmix_alpha),
                seed=args.sub_seed(seed, 1),
            )
            self.layers.append(self.cutmix)
        self.generator = keras.random.SeedGenerator(args.sub_seed(seed, 2))

    def __repr__(self):
        alpha = ", ".join(f"{k}={v:g}" for k, v in self.alpha.items())
        return (
            f"MixingAugmentation(kind={self.kind!r}, label_mode={self.label_mode!r}, "
            f"num_classes={self.num_classes}, alpha=({alpha}), seed={self.seed})"
        )

    # Labels.

    def _soft_labels(self, ops, labels, batch):
        """Labels as float32 rows ``(batch, num_classes)``, or ``(batch, 1)`` for binary."""
        shape = tuple(labels.shape)
        rank = len(shape)
        if self.label_mode == "int":
            dtype = keras.backend.standardize_dtype(labels.dtype)
            if not dtype.startswith(("int", "uint")):
                raise TypeError(
                    "label_mode='int' takes integer class indices; received labels of "
                    f"dtype {dtype} and shape {shape}. Cast them to int, or use "
                    "label_mode='categorical' for one-hot rows or label_mode='binary' "
                    "for the 0/1 targets of one sigmoid unit."
                )
            if rank == 2 and shape[1] == 1:
                labels = ops.reshape(labels, (-1,))
            elif rank != 1:
                raise ValueError(
                    "label_mode='int' takes one class index per picture, shape (batch,) "
                    f"or (batch, 1); received labels of shape {shape}. For one-hot "
                    "rows use label_mode='categorical'."
                )
            labels = ops.cast(_check_class_indices(labels, self.num_classes), "int32")
            classes = ops.arange(self.num_classes, dtype="int32")
            return ops.cast(ops.equal(ops.expand_dims(labels, 1), classes), "float32")
        if self.label_mode == "categorical":
            if rank != 2 or (shape[1] is not None and shape[1] != self.num_classes):
                raise ValueError(
                    "label_mode='categorical' takes one-hot rows of shape (batch, "
                    f"num_classes) = (batch, {self.num_classes}); received labels of "
                    f"shape {shape}. For class indices use label_mode='int'."
                )
            return ops.cast(labels, "float32")
        # binary: the target of one sigmoid unit, kept as a (batch, 1) column.
        if rank == 1 or (rank == 2 and shape[1] == 1):
            return ops.reshape(ops.cast(labels, "float32"), (-1, 1))
        raise ValueError(
            "label_mode='binary' takes one 0/1 target per picture, shape (batch,) or "
            f"(batch, 1); received labels of shape {shape}. For several classes use "
            "label_mode='int' or 'categorical' with num_classes."
        )

    # The two methods.

    def _mixup(self, pictures, labels):
        assert self.mixup is not None  # made for the kinds that call _mixup
        mixed = self.mixup({"images": pictures, "labels": labels}, training=True)
        return mixed["images"], mixed["labels"]

    def _cutmix(self, ops, pictures, labels, batch):
        """CutMix, with each label weight the exact share of the pixels pasted.

        Keras' CutMix weighs the labels by the area of the box it draws, in
        real coordinates, while it pastes whole pixels: on small pictures the
        two differ by several percent. Here each picture carries its batch
        index as one more channel through the same CutMix call, so the pixels
        that came from another picture are counted exactly.
        """
        assert self.cutmix is not None  # made for the kinds that call _cutmix
        channels_last = keras.config.image_data_format() == "channels_last"
        axis = -1 if channels_last else 1
        pictures = ops.cast(pictures, self.cutmix.compute_dtype)
        index = ops.cast(ops.arange(batch), pictures.dtype)
        index = ops.reshape(index, (-1, 1, 1, 1))
        index = ops.zeros_like(ops.sum(pictures, axis=axis, keepdims=True)) + index
        mixed = self.cutmix(ops.concatenate([pictures, index], axis=axis), training=True)
        if channels_last:
            source = mixed[..., -1]
            mixed = mixed[..., :-1]
        else:
            source = mixed[:, -1]
            mixed = mixed[:, :-1]
        source = ops.reshape(source, (batch, -1))
        positions = ops.reshape(ops.cast(ops.arange(batch), source.dtype), (-1, 1))
        own = ops.equal(source, positions)
        own_share = ops.mean(ops.cast(own, "float32"), axis=1, keepdims=True)
        pasted = ops.sum(ops.cast(ops.logical_not(own), "float32"), axis=1)
        partner_sum = ops.sum(ops.where(own, ops.zeros_like(source), source), axis=1)
        # Every pasted pixel holds the same partner index: their mean is it.
        partner = ops.cast(
            ops.floor(partner_sum / ops.maximum(pasted, 1.0) + 0.5), "int32"
        )
        partner_labels = ops.take(labels, partner, axis=0)
        return mixed, own_share * labels + (1.0 - own_share) * partner_labels

    def _uniform(self, pictures, batch):
        """U(0, 1) per picture: inside ``tf.data`` from TensorFlow, as the layers do."""
        if _tf_data.in_tf_data(pictures):
            seed = args.sub_seed(self.seed, 2)
            return _tf_data_random.uniform(self, (batch,), seed)
        return keras.random.uniform((batch,), seed=self.generator)

    def __call__(self, images, labels):
        """Mixes a batch: returns ``(mixed_images, soft_labels)``, both float32."""
        if not hasattr(images, "shape") or not hasattr(images, "dtype"):
            images = np.asarray(images)
        if not hasattr(labels, "shape") or not hasattr(labels, "dtype"):
            labels = np.asarray(labels)
        rank = len(images.shape)
        if rank != 4:
            raise ValueError(
                "Mixing needs a batch of images, shape (batch, height, width, "
                f"channels); received shape {tuple(images.shape)}. Batch the "
                "dataset before mapping: dataset.batch(32).map(mixing)."
            )
        label_batch = labels.shape[0] if len(labels.shape) else None
        if (
            images.shape[0] is not None
            and label_batch is not None
            and int(images.shape[0]) != int(label_batch)
        ):
            raise ValueError(
                f"Got {images.shape[0]} pictures but {label_batch} labels: mixing "
                "takes one label per picture."
            )
        if not _tf_data.runs_in_tf_data(images):
            images = keras.ops.convert_to_tensor(images)
            labels = keras.ops.convert_to_tensor(labels)
        ops = _tf_data.keras_ops_for(images)
        batch = ops.shape(images)[0]
        if isinstance(images.shape[0], int):
            batch = int(images.shape[0])
        soft = self._soft_labels(ops, labels, batch)
        if self.kind == "mixup":
            mixed, soft = self._mixup(images, soft)
        elif self.kind == "cutmix":
            mixed, soft = self._cutmix(ops, images, soft, batch)
        else:
            mixup_images, mixup_labels = self._mixup(images, soft)
            cutmix_images, cutmix_labels = self._cutmix(ops, images, soft, batch)
            use_mixup = self._uniform(images, batch) < 0.5
            mixed = ops.where(
                ops.reshape(use_mixup, (-1, 1, 1, 1)), mixup_images, cutmix_images
            )
            soft = ops.where(ops.reshape(use_mixup, (-1, 1)), mixup_labels, cutmix_labels)
        if self.label_mode == "binary" and len(labels.shape) == 1:
            soft = ops.reshape(soft, (-1,))
        return mixed, ops.cast(soft, "float32")


def mixing_augmentation(
    kind: str = "mixup",
    *,
    num_classes: int | None = None,
    label_mode: str = "int",
    alpha: float | None = None,
    seed: int | None = None,
) -> MixingAugmentation:
    """Returns MixUp or CutMix for ``dataset.map`` on ``(images, labels)`` batches.

    MixUp (Zhang et al., 2018) blends each picture with another picture of
    the batch; CutMix (Yun et al., 2019) pastes a rectangle of another
    picture into it. The labels are mixed by the same draw, so the result
    belongs in the input pipeline, after ``batch``, on the training data
    only. Train on it with ``categorical_crossentropy`` (the labels come out
    as soft one-hot rows), or ``binary_crossentropy`` with
    ``label_mode="binary"``.

    Args:
        kind: ``"mixup"``, ``"cutmix"`` or ``"mixup_or_cutmix"`` (each
            picture gets one or the other, with probability 1/2).
        num_classes: Number of classes of the softmax head, e.g. ``10``
            (required unless ``label_mode="binary"``).
        label_mode: ``"int"`` (class indices), ``"categorical"`` (one-hot
            rows) or ``"binary"`` (0/1 targets of one sigmoid unit), as in
            `keras.utils.image_dataset_from_directory`.
        alpha: The Beta(alpha, alpha) parameter of the mixing weight, > 0.
            None: 0.2 for MixUp, 1.0 for CutMix (at most 1 for CutMix).
        seed: Int seed for reproducible draws.

    Returns:
        A callable ``mixing(images, labels) -> (mixed_images, soft_labels)``,
        both float32; the pictures keep their value range.

    Raises:
        ValueError: For an unknown ``kind`` or ``label_mode``, or a bad
            ``num_classes`` or ``alpha``.
        TypeError: Without ``num_classes`` where it is needed.

    Example:

    ```python
    mixing = mixing_augmentation("mixup", num_classes=10, seed=0)
    train = train.batch(32).map(mixing)
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    ```
    """
    kind = args.check_choice("kind", kind, MIXING_KINDS)
    label_mode = args.check_choice("label_mode", label_mode, LABEL_MODES)
    seed = args.check_seed(seed)
    if label_mode == "binary":
        if num_classes not in (None, 1, 2) or isinstance(num_classes, bool):
            raise ValueError(
                "label_mode='binary' is for two classes and one sigmoid unit; leave "
                "num_classes out (or use label_mode='int' for more classes). "
                f"{args.received('num_classes', num_classes)}"
            )
        num_classes = None
    else:
        if num_classes is None:
            raise TypeError(
                f"mixing_augmentation needs num_classes with label_mode={label_mode!r}: "
                "the number of classes of the softmax head, e.g. num_classes=10 (the "
                "labels become one-hot rows of that length). For 0/1 labels and one "
                "sigmoid unit, use label_mode='binary'."
            )
        num_classes = args.check_int("num_classes", num_classes, minimum=2)
    methods = ("mixup", "cutmix") if kind == "mixup_or_cutmix" else (kind,)
    alphas = {}
    for method in methods:
        if alpha is None:
            alphas[method] = DEFAULT_ALPHA[method]
            continue
        maximum = 1.0 if method == "cutmix" else None
        alphas[method] = args.check_number(
            "alpha", alpha, 0.0, maximum, include_minimum=False, example="0.2"
        )
    return MixingAugmentation(kind, num_classes, label_mode, alphas, seed)
