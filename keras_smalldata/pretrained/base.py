"""`PretrainedBase`: a `keras.applications` conv base with its preprocessing built in.

Structure (what other code can rely on):

``PretrainedBase`` is a Functional `keras.Model` whose ``.layers`` are, in order:

- index 0: the ``InputLayer`` (named ``"image"``), pictures in **[0, 255]**;
- index 1: an `ImageNetPreprocessing` layer (named ``"imagenet_preprocessing"``)
  applying the family's ``preprocess_input``;
- then every layer of the `keras.applications` model, inlined in the same
  graph (built with ``include_top=False`` and ``input_tensor=``), with Keras'
  own layer names (``block3_conv1``...);
- possibly a final global pooling layer.

Because everything sits in one flat graph, ``base.get_layer("block5_conv3")``
works, ``keras.Model(base.input, base.get_layer(name).output)`` gives a
feature extractor that still takes 0-255 pictures, and a model that contains
the base exposes its layers as ``<base name>/<layer name>`` (e.g.
``vgg16/block3_conv1``) by walking ``.layers``. The base's name defaults to
the architecture's (``"vgg16"``). Note that indices are shifted by one with
respect to ``keras.applications``' own model because of the preprocessing
layer: Keras' InceptionV3 example freezes ``layers[:249]``; here that is
``freeze_until(250)``, or better ``freeze_through("mixed8")``.

``last_conv_layer_name`` names the last convolution layer (for Grad-CAM) and
``feature_layer_name`` the layer that outputs the feature map.
"""

from __future__ import annotations

import difflib
import os
import re
import warnings

import keras

from keras_smalldata.pretrained.freezing import (
    contains_layer,
    is_auto_named,
    leaf_layers,
    recompile,
    set_trainable,
    trainable_summary,
)
from keras_smalldata.pretrained.preprocessing import ImageNetPreprocessing
from keras_smalldata.pretrained.registry import Architecture, get_architecture
from keras_smalldata.pretrained.weights import (
    build_with_imagenet_weights,
    check_weights_path,
    load_weights_file,
)

POOLING_MODES = (None, "avg", "max")
PREPROCESSING_CHOICES = ("auto", "caffe", "tf", "torch", "none")
_RESERVED_APPLICATION_KWARGS = (
    "include_top",
    "weights",
    "input_tensor",
    "input_shape",
    "pooling",
    "classes",
    "classifier_activation",
    "include_preprocessing",
    "name",
)
_CONV_TYPES = (
    keras.layers.Conv2D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv2D,
)
INPUT_LAYER_NAME = "image"
PREPROCESSING_LAYER_NAME = "imagenet_preprocessing"


@keras.saving.register_keras_serializable(package="keras_smalldata")
class PretrainedBase(keras.Model):
    """A `keras.applications` conv base that takes 0-255 pictures and freezes cleanly.

    The base wraps ``keras.applications.<Architecture>(include_top=False)``
    and puts the family's own ``preprocess_input`` inside the model, so you
    feed it pictures with pixel values in **[0, 255]** (what
    `keras.utils.image_dataset_from_directory` gives) and never call
    ``preprocess_input`` yourself. Do **not** rescale to [0, 1] first.

    Freezing:

    - ``freeze()`` / ``unfreeze()``: the whole base.
    - ``freeze_until(x)``: everything before ``x`` frozen, ``x`` and what
      follows trainable. ``x`` is a layer name (``"block5_conv1"``), a block
      or stage name (``"block5"``, ``"conv5"``), an index into ``base.layers``
      (negative allowed) or a layer.
    - ``freeze_through(x)``: ``x`` and everything before it frozen (for
      families whose stable names are block *outputs*: ``"mixed8"``).
    - ``unfreeze_last_block()``: train the last block only (the seeds' recipe).

    Auto-numbered names (``conv2d_94``) are refused, because they change from
    one model instance to the next; the error names stable alternatives.

    BatchNormalization: with ``train_batchnorm=False`` BN layers stay frozen
    whatever the freezing calls do. A frozen Keras 3 BN layer runs in
    inference mode, so fine-tuning on a small dataset cannot wreck its
    pretrained statistics. The default is False for pretrained weights and
    True for ``weights=None`` (training from scratch needs trainable BN).

    Compiling: Keras reads the ``trainable`` flags when a model is compiled.
    Every freezing method takes ``recompile=model`` (and optionally
    ``optimizer=``): the model is then compiled again for you with its own
    loss and metrics. Without it, compile the model yourself after freezing
    (Keras 3.15 also warns at ``fit()`` when you forget).

    Args:
        architecture: A name from `available_architectures()`, e.g.
            ``"VGG16"``, ``"resnet50"``, ``"EfficientNetB0"`` (case, ``_`` and
            ``-`` are ignored). Unknown names get the closest matches.
        input_shape: ``(height, width, 3)``; default: the architecture's
            default size (224 for VGG16). Sides may be None (variable), must
            be at least the architecture's minimum (32; 75 for Inception; 71
            for Xception).
        weights: ``"imagenet"`` (downloaded once by Keras and cached in
            ``~/.keras/models``, or ``$KERAS_HOME/models``), None (random
            weights) or the path of a weights file (Keras' own
            ``..._notop.h5`` download, or a file written by
            ``base.save_weights("x.weights.h5")``).
        pooling: None (output the feature map, e.g. 4x4x512 for VGG16 at
            150x150), ``"avg"`` or ``"max"`` (global pooling to a vector).
        output_layer: Use only the base up to this layer (name, block name
            or index into the full base's layers): the seeds' "only the first
            few layers when your data differ a lot from ImageNet". See also
            `cut_at`.
        preprocessing: ``"auto"`` (the family's mode), or force
            ``"caffe"``, ``"tf"``, ``"torch"`` or ``"none"`` (your pictures
            are already preprocessed).
        train_batchnorm: See above; None means "True only for weights=None".
        application_kwargs: Extra arguments for the `keras.applications`
            constructor, e.g. ``{"alpha": 0.35}`` for MobileNetV2.
        frozen_ranges: Used by ``from_config``: ``[[start, stop], ...]``
            index ranges of frozen layers.
        name: The model's name; default: the architecture's (``"vgg16"``).
        trainable: False freezes the whole base.

    Example:

    ```python
    base = PretrainedBase("vgg16", input_shape=(150, 150, 3), weights=None)
    inputs = keras.Input((150, 150, 3))
    x = base(inputs)                       # pictures in [0, 255]
    outputs = add_classifier_head(x)
    model = keras.Model(inputs, outputs)
    base.freeze()                          # feature extraction
    base.freeze_until("block5_conv1")      # later: fine-tuning
    ```
    """

    def __init__(
        self,
        architecture: str | Architecture,
        input_shape=None,
        weights="imagenet",
        pooling: str | None = None,
        output_layer=None,
        preprocessing: str = "auto",
        train_batchnorm: bool | None = None,
        application_kwargs: dict | None = None,
        frozen_ranges=None,
        name: str | None = None,
        trainable: bool = True,
        _shared_graph=None,
        **kwargs,
    ):
        spec = get_architecture(architecture)
        if pooling not in POOLING_MODES:
            raise ValueError(
                f"pooling={pooling!r} is not supported; use None (feature map), "
                "'avg' or 'max'."
            )
        if preprocessing not in PREPROCESSING_CHOICES:
            raise ValueError(
                f"preprocessing={preprocessing!r} is not supported; use one of "
                f"{PREPROCESSING_CHOICES}."
            )
        if train_batchnorm is not None and not isinstance(train_batchnorm, bool):
            raise TypeError(f"train_batchnorm={train_batchnorm!r} must be True, False or None.")
        application_kwargs = dict(application_kwargs or {})
        reserved = sorted(set(application_kwargs) & set(_RESERVED_APPLICATION_KWARGS))
        if reserved:
            raise ValueError(
                f"application_kwargs cannot set {reserved}: PretrainedBase sets them "
                "itself (use its own input_shape, weights, pooling, preprocessing "
                "and name arguments)."
            )
        if keras.backend.image_data_format() != "channels_last":
            raise ValueError(
                "PretrainedBase supports image_data_format='channels_last' only; got "
                f"{keras.backend.image_data_format()!r}."
            )
        input_shape = _check_input_shape(input_shape, spec)
        weights = _check_weights(weights)
        if train_batchnorm is None:
            train_batchnorm = weights is None
        mode = spec.preprocessing if preprocessing == "auto" else preprocessing
        if mode == "builtin":
            mode = "none"

        if _shared_graph is not None:
            inputs, outputs = _shared_graph
        else:
            inputs, outputs = _build_graph(
                spec, input_shape, weights, pooling, output_layer, mode, application_kwargs
            )
        super().__init__(inputs, outputs, name=name or spec.default_name, **kwargs)

        self.architecture = spec
        self._base_input_shape = input_shape
        self.pooling = pooling
        self.output_layer = output_layer
        self.preprocessing = mode
        self._preprocessing_arg = preprocessing
        self.train_batchnorm = train_batchnorm
        self._application_kwargs = tuple(sorted(application_kwargs.items()))

        self._apply_batchnorm_policy()
        if frozen_ranges:
            for start, stop in frozen_ranges:
                for layer in self.layers[int(start) : int(stop)]:
                    set_trainable(layer, False)
        if not trainable:
            set_trainable(self, False)

    # ------------------------------------------------------------------ info

    @property
    def feature_index(self) -> int:
        """Index in ``.layers`` of the layer that outputs the (unpooled) feature map."""
        for index in range(len(self.layers) - 1, -1, -1):
            if len(self.layers[index].output.shape) == 4:
                return index
        raise ValueError(f"{self.name!r} has no 4D feature map.")  # pragma: no cover

    @property
    def feature_layer_name(self) -> str:
        """Name of the layer that outputs the (unpooled) feature map."""
        return self.layers[self.feature_index].name

    @property
    def last_conv_layer_name(self) -> str:
        """Name of the last convolution layer of this base (e.g. for Grad-CAM).

        For a full base this is the registry's fact (``block5_conv3`` for
        VGG16); for InceptionV3, whose conv layers are auto-numbered, and for
        cut bases it is the last convolution layer found in this instance.
        """
        names = [layer.name for layer in self.layers]
        if self.output_layer is None and self.architecture.last_conv in names:
            return self.architecture.last_conv
        for layer in reversed(self.layers[: self.feature_index + 1]):
            if isinstance(layer, _CONV_TYPES):
                return layer.name
            if isinstance(layer, keras.layers.Dense) and len(layer.output.shape) == 4:
                return layer.name  # ConvNeXt's pointwise convolutions
        raise ValueError(f"{self.name!r} has no convolution layer.")

    @property
    def blocks(self) -> dict[str, tuple[int, int]]:
        """The blocks/stages of this base: name -> (first index, last index).

        Found with the registry's patterns over layer names, in layer order,
        e.g. ``{"block1": (2, 4), ..., "block5": (15, 18)}`` for VGG16.
        Families without block names (Inception, NASNet, MobileNet) have none.
        """
        found: dict[str, list[int]] = {}
        for pattern in self.architecture.block_patterns:
            regex = re.compile(pattern)
            for index, layer in enumerate(self.layers):
                match = regex.match(layer.name)
                if match:
                    span = found.setdefault(match.group(1), [index, index])
                    span[1] = index
        return {k: (v[0], v[1]) for k, v in sorted(found.items(), key=lambda kv: kv[1][0])}

    def trainable_summary(self):
        """Returns a `TrainableSummary` of this base (print it for a table)."""
        return trainable_summary(self)

    # ------------------------------------------------------------- freezing

    def freeze(self, recompile=None, optimizer=None) -> PretrainedBase:
        """Freezes the whole base (feature extraction). Returns the base.

        Args:
            recompile: Optional compiled model containing this base, compiled
                again for you (same loss and metrics) after the change.
            optimizer: Optimizer for that recompilation (default: a fresh one
                with the model's current optimizer settings).
        """
        self._check_recompile(recompile, optimizer)
        set_trainable(self, False)
        return self._changed(recompile, optimizer)

    def unfreeze(self, recompile=None, optimizer=None) -> PretrainedBase:
        """Makes the whole base trainable (BatchNormalization: see ``train_batchnorm``).

        Args:
            recompile: See `freeze`.
            optimizer: See `freeze`.
        """
        self._check_recompile(recompile, optimizer)
        set_trainable(self, True)
        self._apply_batchnorm_policy()
        return self._changed(recompile, optimizer)

    def freeze_until(self, layer, recompile=None, optimizer=None) -> PretrainedBase:
        """Freezes every layer before ``layer``; ``layer`` and what follows train.

        Args:
            layer: A layer name (``"block5_conv1"``), a block/stage name
                (``"block5"``: its first layer), an index into ``base.layers``
                (negative allowed: ``-4`` trains the last four layers) or a
                layer of this base.
            recompile: See `freeze`.
            optimizer: See `freeze`.

        Example:

        ```python
        base.freeze_until("block5_conv1")
        base.trainable_summary().trainable_params
        # 7079424
        ```
        """
        index = self._resolve(layer, "freeze_until", block_end=False)
        self._check_recompile(recompile, optimizer)
        self._freeze_before(index)
        return self._changed(recompile, optimizer)

    def freeze_through(self, layer, recompile=None, optimizer=None) -> PretrainedBase:
        """Freezes ``layer`` and every layer before it; what follows trains.

        Args:
            layer: As in `freeze_until` (a block name means its last layer),
                e.g. ``"mixed8"`` for InceptionV3: its last two inception
                blocks train (Keras' own fine-tuning example).
            recompile: See `freeze`.
            optimizer: See `freeze`.
        """
        index = self._resolve(layer, "freeze_through", block_end=True)
        self._check_recompile(recompile, optimizer)
        self._freeze_before(index + 1)
        return self._changed(recompile, optimizer)

    def unfreeze_last_block(self, recompile=None, optimizer=None) -> PretrainedBase:
        """Trains only the last block (registry fact), e.g. ``block5`` of VGG16.

        Args:
            recompile: See `freeze`.
            optimizer: See `freeze`.
        """
        spec = self.architecture
        names = {layer.name for layer in self.layers}
        if spec.last_block_start in names:
            return self.freeze_until(spec.last_block_start, recompile, optimizer)
        if spec.last_block_after in names:
            return self.freeze_through(spec.last_block_after, recompile, optimizer)
        raise ValueError(
            f"{self.name!r} does not contain the last block of {spec.name} "
            f"({spec.last_block_start or spec.last_block_after!r}); it was cut at "
            f"{self.feature_layer_name!r}. Use freeze_until(...) with one of its layers."
        )

    def cut_at(self, layer, pooling="same") -> PretrainedBase:
        """Returns the base up to ``layer`` (inclusive), sharing its layers and weights.

        Like ``keras.Model(base.input, base.get_layer(layer).output)``, but
        the result is still a `PretrainedBase` (preprocessing, freezing,
        saving). Layers are shared, so freezing one freezes the other.

        Args:
            layer: A stable layer name, a block name (its last layer, e.g.
                ``"block3"`` -> ``block3_pool``) or an index into ``base.layers``.
            pooling: ``"same"`` (this base's pooling), None, ``"avg"`` or ``"max"``.

        Returns:
            A new `PretrainedBase`.

        Example:

        ```python
        small = base.cut_at("block3")      # VGG16 blocks 1-3 only
        ```
        """
        if pooling == "same":
            pooling = self.pooling
        if pooling not in POOLING_MODES:
            raise ValueError(f"pooling={pooling!r} is not supported; use 'same', None, 'avg' or 'max'.")
        index = self._resolve(layer, "cut_at", block_end=True)
        if index > self.feature_index:
            raise ValueError(
                f"cut_at({layer!r}): index {index} is the pooling layer; cut at a "
                f"layer up to {self.feature_layer_name!r} (index {self.feature_index})."
            )
        target = self.layers[index]
        outputs = _add_pooling(target.output, pooling)
        config = self.get_config()
        config.update(
            output_layer=target.name,
            pooling=pooling,
            name=f"{self.name}_to_{target.name}",
            frozen_ranges=None,
            trainable=self.trainable,
        )
        clone = type(self)(**config, _shared_graph=(self.input, outputs))
        # Layers are shared: their trainable flags already are this base's.
        return clone

    # -------------------------------------------------------------- helpers

    def _apply_batchnorm_policy(self) -> None:
        if self.train_batchnorm:
            return
        for layer in leaf_layers(self):
            if isinstance(layer, keras.layers.BatchNormalization):
                set_trainable(layer, False)

    def _freeze_before(self, index: int) -> None:
        set_trainable(self, True)
        for layer in self.layers[:index]:
            set_trainable(layer, False)
        self._apply_batchnorm_policy()

    def _check_recompile(self, model, optimizer) -> None:
        # Checked before any trainable flag changes, so a bad call changes nothing.
        if model is None:
            if optimizer is not None:
                raise ValueError("optimizer= is only used with recompile=model.")
            return
        if not isinstance(model, keras.Model):
            raise TypeError(
                f"recompile={model!r} must be the keras.Model that contains this base."
            )
        if not contains_layer(model, self):
            raise ValueError(
                f"recompile=model {model.name!r} does not contain this base {self.name!r}."
            )
        if not model.compiled:
            raise ValueError(
                f"recompile=model: {model.name!r} is not compiled yet, so there is "
                "nothing to recompile; call model.compile(...) after freezing, as usual."
            )

    def _changed(self, model, optimizer) -> PretrainedBase:
        if model is not None:
            recompile(model, optimizer)
        elif self.compiled:
            warnings.warn(
                f"{self.name!r} is compiled: the trainable change has no effect on fit() "
                "until you compile it again (or pass recompile=model).",
                stacklevel=3,
            )
        return self

    def _resolve(self, ref, purpose: str, block_end: bool) -> int:
        """Turns a layer reference into an index into ``self.layers``."""
        layers = self.layers
        if isinstance(ref, bool):
            raise TypeError(f"{purpose}({ref!r}): pass a layer name, block name or index.")
        if isinstance(ref, int):
            if not -len(layers) <= ref < len(layers):
                raise ValueError(
                    f"{purpose}({ref}): index out of range; {self.name!r} has "
                    f"{len(layers)} layers (indices {-len(layers)} to {len(layers) - 1})."
                )
            index = ref % len(layers)
            if purpose == "cut_at" and is_auto_named(layers[index]):
                self._refuse_auto_name(layers[index].name, index, purpose)
            return index
        if isinstance(ref, keras.layers.Layer):
            for index, layer in enumerate(layers):
                if layer is ref:
                    return index
            raise ValueError(f"{purpose}: layer {ref.name!r} is not a layer of {self.name!r}.")
        if not isinstance(ref, str):
            raise TypeError(
                f"{purpose}({ref!r}): pass a layer name, block name or index, not "
                f"{type(ref).__name__}."
            )
        names = [layer.name for layer in layers]
        if ref in names:
            index = names.index(ref)
            if is_auto_named(layers[index]):
                self._refuse_auto_name(ref, index, purpose)
            return index
        blocks = self.blocks
        if ref in blocks:
            return blocks[ref][1 if block_end else 0]
        stable = [n for n, layer in zip(names, layers) if not is_auto_named(layer)]
        close = difflib.get_close_matches(ref, stable + list(blocks), n=5, cutoff=0.6)
        message = f"{purpose}({ref!r}): {self.name!r} has no layer or block named {ref!r}."
        if close:
            message += f" Closest names: {close}."
        if blocks:
            message += f" Blocks: {list(blocks)}."
        message += " See [layer.name for layer in base.layers] for all layer names."
        raise ValueError(message)

    def _refuse_auto_name(self, name: str, index: int, purpose: str):
        layers = self.layers
        before = next(
            (i for i in range(index - 1, -1, -1) if not is_auto_named(layers[i])), None
        )
        after = next(
            (i for i in range(index + 1, len(layers)) if not is_auto_named(layers[i])), None
        )
        hints = []
        if purpose != "cut_at":
            hints.append(f"its index: {purpose}({index})  (base.layers[{index}])")
        if before is not None:
            hints.append(
                f"the nearest stable layer before it: {layers[before].name!r} (index "
                f"{before}); freeze_through({layers[before].name!r}) freezes up to and "
                "including it"
            )
        if after is not None:
            hints.append(
                f"the nearest stable layer after it: {layers[after].name!r} (index {after})"
            )
        landmarks = self.architecture.landmarks
        if landmarks:
            marks = [layer.name for layer in layers if re.match(landmarks, layer.name)]
            if marks:
                hints.append(f"stable block outputs of {self.architecture.name}: {marks}")
        raise ValueError(
            f"{purpose}({name!r}): {name!r} is an automatic layer name. Keras numbers "
            "unnamed layers per session, so this layer has another name in the next "
            "model you build or load and the call would not mean the same thing. "
            "Use instead:\n  - " + "\n  - ".join(hints)
        )

    # --------------------------------------------------------------- config

    def _frozen_ranges(self) -> list[list[int]]:
        ranges: list[list[int]] = []
        for index, layer in enumerate(self.layers):
            if layer.trainable:
                continue
            if ranges and ranges[-1][1] == index:
                ranges[-1][1] = index + 1
            else:
                ranges.append([index, index + 1])
        return ranges

    def get_config(self):
        # weights=None: rebuilding from a config must never download anything;
        # the weights come from the .keras file (or the caller's load_weights).
        return {
            "architecture": self.architecture.name,
            "input_shape": list(self._base_input_shape),
            "weights": None,
            "pooling": self.pooling,
            "output_layer": self.output_layer,
            "preprocessing": self._preprocessing_arg,
            "train_batchnorm": self.train_batchnorm,
            "application_kwargs": dict(self._application_kwargs),
            "frozen_ranges": self._frozen_ranges(),
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["weights"] = None
        if config.get("input_shape") is not None:
            config["input_shape"] = tuple(config["input_shape"])
        return cls(**config)


# ------------------------------------------------------------------ building


def _check_input_shape(input_shape, spec: Architecture) -> tuple:
    if input_shape is None:
        return (spec.default_size, spec.default_size, 3)
    try:
        shape = tuple(None if d is None else int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise TypeError(
            f"input_shape={input_shape!r} must be a tuple (height, width, 3)."
        ) from None
    if len(shape) != 3 or shape[-1] != 3:
        raise ValueError(
            f"input_shape={input_shape!r} must be (height, width, 3): RGB pictures, "
            "channels last, without the batch axis."
        )
    for side in shape[:2]:
        if side is not None and side < spec.min_size:
            raise ValueError(
                f"input_shape={input_shape!r} is too small for {spec.name}: each side "
                f"must be at least {spec.min_size} pixels (default size "
                f"{spec.default_size})."
            )
    return shape


def _check_weights(weights):
    if weights is None or weights == "imagenet":
        return weights
    if isinstance(weights, (str, os.PathLike)):
        return check_weights_path(weights)
    raise TypeError(
        f"weights={weights!r} must be 'imagenet', None or the path of a weights file."
    )


def _add_pooling(x, pooling):
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x


def _build_graph(spec, input_shape, weights, pooling, output_layer, mode, application_kwargs):
    """Builds Input -> preprocessing -> application layers; returns (inputs, outputs)."""
    inputs = keras.Input(shape=input_shape, name=INPUT_LAYER_NAME)
    x = ImageNetPreprocessing(mode, name=PREPROCESSING_LAYER_NAME)(inputs)
    kwargs = dict(
        include_top=False,
        input_tensor=x,
        input_shape=input_shape,
        # Keras' own pooling for a full base (ConvNeXt pools *before* its
        # final LayerNormalization); ours after a cut.
        pooling=pooling if output_layer is None else None,
        **application_kwargs,
    )

    def build(w):
        return spec.constructor(weights=w, **kwargs)

    if weights == "imagenet":
        application = build_with_imagenet_weights(spec, lambda: build("imagenet"))
    else:
        application = build(None)
        if weights is not None:
            description = (
                f"{spec.name}(include_top=False, input_shape={input_shape}"
                + "".join(f", {k}={v!r}" for k, v in sorted(application_kwargs.items()))
                + ")"
            )
            load_weights_file(application, weights, description)
    if output_layer is None:
        return inputs, application.output
    index = _resolve_output_layer(application, spec, output_layer)
    return inputs, _add_pooling(application.layers[index].output, pooling)


def _resolve_output_layer(application, spec, output_layer) -> int:
    layers = application.layers
    names = [layer.name for layer in layers]
    if isinstance(output_layer, bool) or not isinstance(output_layer, (int, str)):
        raise TypeError(
            f"output_layer={output_layer!r} must be a layer name, block name or index."
        )
    if isinstance(output_layer, int):
        if not -len(layers) < output_layer < len(layers) or output_layer % len(layers) < 2:
            raise ValueError(
                f"output_layer={output_layer}: use an index from 2 to {len(layers) - 1} "
                f"(or negative) into the {len(layers)} layers of {spec.name}."
            )
        return output_layer % len(layers)
    if output_layer in names:
        index = names.index(output_layer)
        if is_auto_named(layers[index]):
            raise ValueError(
                f"output_layer={output_layer!r} is an automatic layer name that changes "
                "between model instances; pass its index instead "
                f"(output_layer={index}) or a stable name."
            )
        return index
    last_index = {}
    for pattern in spec.block_patterns:
        regex = re.compile(pattern)
        for index, name in enumerate(names):
            match = regex.match(name)
            if match:
                last_index[match.group(1)] = index
    if output_layer in last_index:
        return last_index[output_layer]
    stable = [n for n, layer in zip(names, layers) if not is_auto_named(layer)]
    close = difflib.get_close_matches(output_layer, stable + list(last_index), n=5, cutoff=0.6)
    raise ValueError(
        f"output_layer={output_layer!r}: {spec.name} has no layer or block of that name."
        + (f" Closest names: {close}." if close else "")
    )
