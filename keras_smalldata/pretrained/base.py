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

import contextlib
import inspect
import os
import re
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from keras_smalldata import _arguments as args
from keras_smalldata._models import CONVOLUTION_TYPES, contains_layer, resolve_layer
from keras_smalldata._types import Shape, Tensor
from keras_smalldata.pretrained.freezing import (
    Models,
    Optimizer,
    StaleCompileWarning,
    TrainableSummary,
    is_auto_named,
    note_train_steps,
    recompile,
    set_trainable,
    stale_models,
    trainable_summary,
    weight_layers,
)
from keras_smalldata.pretrained.preprocessing import ImageNetPreprocessing
from keras_smalldata.pretrained.registry import Architecture, get_architecture
from keras_smalldata.pretrained.weights import (
    build_with_imagenet_weights,
    check_weights_path,
    load_weights_file,
)

POOLING_MODES = (None, "avg", "max")
# "auto": the family's own mode; "none": no preprocessing (pictures already
# preprocessed, or a family whose model rescales itself).
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
# Arguments of keras.applications constructors that a conv base does not take,
# with what to do instead.
_HEAD_ADVICE = (
    "A PretrainedBase is a conv base: it never has Keras' ImageNet classifier "
    "(include_top=False is built in). Add your own head on top of it, e.g. "
    "outputs = add_classifier_head(base(inputs), num_classes=5)."
)
_APPLICATION_ONLY_ARGUMENTS = {
    "include_top": _HEAD_ADVICE,
    "classes": _HEAD_ADVICE,
    "classifier_activation": _HEAD_ADVICE,
    "input_tensor": "Call the base on your tensor instead: x = base(tensor).",
    "include_preprocessing": (
        "Use preprocessing='none' to leave the pictures as they are, or "
        "preprocessing='auto' for the family's own preprocessing."
    ),
}
INPUT_LAYER_NAME = "image"
PREPROCESSING_LAYER_NAME = "imagenet_preprocessing"


@keras.saving.register_keras_serializable(package="keras_smalldata")
class PretrainedBase(keras.Model):
    """A `keras.applications` conv base that takes 0-255 pictures and freezes cleanly.

    It wraps ``keras.applications.<Architecture>(include_top=False)`` with
    the family's own ``preprocess_input`` inside the model: feed it pictures
    in **[0, 255]**, as `keras.utils.image_dataset_from_directory` gives
    them, never rescaled to [0, 1]. Freeze it with `freeze`, `unfreeze`,
    `freeze_until`, `freeze_through` or `unfreeze_last_block`, each of which
    takes ``recompile=model`` to compile the models that contain it again.
    BatchNormalization layers stay frozen (in inference mode) unless
    ``train_batchnorm=True``. The pretrained-bases guide explains freezing,
    recompiling and BatchNormalization in full.

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
        preprocessing: ``"auto"`` (the family's own mode), or force
            ``"caffe"``, ``"tf"``, ``"torch"`` or ``"none"`` (no
            preprocessing: your pictures are already preprocessed).
        train_batchnorm: Whether BatchNormalization layers may train when
            the base is unfrozen; None means True only for ``weights=None``.
        application_kwargs: Extra arguments for the `keras.applications`
            constructor, e.g. ``{"alpha": 0.35}`` for MobileNetV2.
        frozen_ranges: Used by ``from_config``: ``[[start, stop], ...]``
            index ranges of frozen layers.
        name: The model's name; default: the architecture's (``"vgg16"``).
        trainable: False freezes the whole base.
        dtype: The dtype policy the layers are built with (e.g.
            ``"mixed_float16"``); default: Keras' global policy.

    Raises:
        TypeError: For an argument the base does not take, e.g.
            ``include_top`` or ``classes`` (add a head instead, see
            `add_classifier_head`) or a misspelt name (with the closest ones).

    Example:

    ```python
    base = PretrainedBase("vgg16", input_shape=(150, 150, 3), weights=None)
    inputs = keras.Input((150, 150, 3))
    x = base(inputs)                       # pictures in [0, 255]
    outputs = add_classifier_head(x)
    model = keras.Model(inputs, outputs)
    base.freeze()                          # feature extraction
    model.compile("rmsprop", "binary_crossentropy")
    # ... model.fit(...), then fine-tuning (model compiled again for you):
    base.freeze_until("block5_conv1", recompile=model)
    ```
    """

    def __init__(
        self,
        architecture: str | Architecture,
        input_shape: Shape | None = None,
        weights: str | os.PathLike | None = "imagenet",
        pooling: str | None = None,
        output_layer: str | int | None = None,
        preprocessing: str = "auto",
        train_batchnorm: bool | None = None,
        application_kwargs: dict | None = None,
        frozen_ranges: Sequence[Sequence[int]] | None = None,
        name: str | None = None,
        trainable: bool = True,
        dtype: str | keras.DTypePolicy | None = None,
        _shared_graph: tuple[Any, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        _refuse_unknown_arguments(kwargs)
        spec = get_architecture(architecture)
        args.check_choice("pooling", pooling, POOLING_MODES)
        args.check_choice("preprocessing", preprocessing, PREPROCESSING_CHOICES)
        if train_batchnorm is not None:
            args.check_bool("train_batchnorm", train_batchnorm)
        args.check_bool("trainable", trainable)
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
        policy = None if dtype is None else keras.dtype_policies.get(dtype)

        with _global_dtype_policy(policy):
            if _shared_graph is not None:
                inputs, outputs = _shared_graph
            else:
                inputs, outputs = _build_graph(
                    spec, input_shape, weights, pooling, output_layer, mode,
                    application_kwargs,
                )
            super().__init__(inputs, outputs, name=name or spec.default_name)

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
        self._remember_trainable_weights()

    # --------------------------------------------------------------- calling

    def call(
        self,
        inputs: Tensor,
        training: bool | None = None,
        mask: Tensor | None = None,
        **kwargs: Any,
    ) -> Tensor:
        self._check_picture_size(inputs)
        # Running on real tensors (not while a Functional model is being
        # built) is what training needs: remember it for the freezing checks.
        if not any(isinstance(x, keras.KerasTensor) for x in keras.tree.flatten(inputs)):
            self._ran_since_change = True
            # The compiled models whose train step runs the base: what they train.
            if note_train_steps(self):
                self._seen_in_train_step = True
        return super().call(inputs, training=training, mask=mask, **kwargs)

    def compute_output_spec(self, inputs: Tensor, *args: Any, **kwargs: Any) -> Any:
        # Building a model around the base: the same check, before Keras' own
        # ("Computed output size would be zero") deep inside.
        self._check_picture_size(inputs)
        return super().compute_output_spec(inputs, *args, **kwargs)

    def _check_picture_size(self, inputs) -> None:
        """Refuses pictures smaller than the architecture's minimum (free-size bases)."""
        spec = self.architecture
        for tensor in keras.tree.flatten(inputs):
            shape = getattr(tensor, "shape", None)
            if shape is None or len(shape) != 4:
                continue
            sides = [d for d in shape[1:3] if d is not None]
            if sides and min(int(d) for d in sides) < spec.min_size:
                raise ValueError(
                    f"{self.name!r} got pictures of {shape[1]}x{shape[2]} pixels (shape "
                    f"{tuple(shape)}): {spec.name} needs at least {spec.min_size} pixels "
                    f"per side (its default size is {spec.default_size}). Built with "
                    f"input_shape={tuple(self._base_input_shape)}, it takes any size from "
                    f"{spec.min_size} up. Resize the pictures first, e.g. "
                    f"keras.layers.Resizing({spec.default_size}, {spec.default_size}) in "
                    "front of the base, or image_dataset_from_directory(image_size="
                    f"({spec.default_size}, {spec.default_size}))."
                )

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
        last_conv = self.architecture.last_conv
        if self.output_layer is None and last_conv is not None and last_conv in names:
            return last_conv
        for layer in reversed(self.layers[: self.feature_index + 1]):
            if isinstance(layer, CONVOLUTION_TYPES):
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
        return find_blocks(self.layers, self.architecture)

    def trainable_summary(self) -> TrainableSummary:
        """Returns a `TrainableSummary` of this base (print it for a table)."""
        return trainable_summary(self)

    # ------------------------------------------------------------- freezing

    @property
    def trainable(self) -> bool:
        return keras.layers.Layer.trainable.fget(self)

    @trainable.setter
    def trainable(self, value: bool) -> None:
        # `base.trainable = False` (Keras' own idiom) gets the same check as
        # the freezing methods.
        if not hasattr(self, "_checksums"):  # Keras setting it while building
            keras.layers.Layer.trainable.fset(self, value)
            return
        trainable_before = self._trainable_weight_ids()
        keras.layers.Layer.trainable.fset(self, value)
        self._after_change(trainable_before, models=(), optimizer=None)

    def freeze(
        self, recompile: Models | None = None, optimizer: Optimizer | None = None
    ) -> PretrainedBase:
        """Freezes the whole base (feature extraction). Returns the base.

        Args:
            recompile: Optional compiled model that contains this base (or a
                list of them), compiled again for you (same loss and metrics)
                after the change.
            optimizer: Optimizer for that recompilation (default: a fresh one
                with the model's current optimizer settings).
        """
        return self._change(lambda: set_trainable(self, False), recompile, optimizer)

    def unfreeze(
        self, recompile: Models | None = None, optimizer: Optimizer | None = None
    ) -> PretrainedBase:
        """Makes the whole base trainable (BatchNormalization: see ``train_batchnorm``).

        Args:
            recompile: See `freeze`.
            optimizer: See `freeze`.
        """

        def unfreeze():
            set_trainable(self, True)
            self._apply_batchnorm_policy()

        return self._change(unfreeze, recompile, optimizer)

    def freeze_until(
        self,
        layer: str | int | keras.layers.Layer,
        recompile: Models | None = None,
        optimizer: Optimizer | None = None,
    ) -> PretrainedBase:
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
        return self._change(lambda: self._freeze_before(index), recompile, optimizer)

    def freeze_through(
        self,
        layer: str | int | keras.layers.Layer,
        recompile: Models | None = None,
        optimizer: Optimizer | None = None,
    ) -> PretrainedBase:
        """Freezes ``layer`` and every layer before it; what follows trains.

        Args:
            layer: As in `freeze_until` (a block name means its last layer),
                e.g. ``"mixed8"`` for InceptionV3: its last two inception
                blocks train (Keras' own fine-tuning example).
            recompile: See `freeze`.
            optimizer: See `freeze`.
        """
        index = self._resolve(layer, "freeze_through", block_end=True)
        return self._change(lambda: self._freeze_before(index + 1), recompile, optimizer)

    def unfreeze_last_block(
        self, recompile: Models | None = None, optimizer: Optimizer | None = None
    ) -> PretrainedBase:
        """Trains only the last block (registry fact), e.g. ``block5`` of VGG16.

        Args:
            recompile: See `freeze`.
            optimizer: See `freeze`.
        """
        spec = self.architecture
        names = {layer.name for layer in self.layers}
        if spec.last_block_start in names:
            index = self._resolve(spec.last_block_start, "freeze_until", block_end=False)
        elif spec.last_block_after in names:
            index = self._resolve(spec.last_block_after, "freeze_through", block_end=True) + 1
        else:
            raise ValueError(
                f"{self.name!r} does not contain the last block of {spec.name} "
                f"({spec.last_block_start or spec.last_block_after!r}); it was cut at "
                f"{self.feature_layer_name!r}. Use freeze_until(...) with one of its layers."
            )
        return self._change(lambda: self._freeze_before(index), recompile, optimizer)

    def cut_at(self, layer: str | int, pooling: str | None = "same") -> PretrainedBase:
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
        args.check_choice("pooling", pooling, ("same", *POOLING_MODES))
        if pooling == "same":
            pooling = self.pooling
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
        # Layers are shared: their trainable flags already are this base's.
        return type(self)(**config, _shared_graph=(self.input, outputs))

    # -------------------------------------------------------------- helpers

    def _apply_batchnorm_policy(self) -> None:
        if self.train_batchnorm:
            return
        for layer in weight_layers(self):
            if isinstance(layer, keras.layers.BatchNormalization):
                set_trainable(layer, False)

    def _freeze_before(self, index: int) -> None:
        set_trainable(self, True)
        for layer in self.layers[:index]:
            set_trainable(layer, False)
        self._apply_batchnorm_policy()

    def _resolve(self, ref, purpose: str, block_end: bool) -> int:
        return layer_index(
            self, ref, self.architecture, owner=repr(self.name),
            label=lambda value: f"{purpose}({value!r})",
            block_end=block_end, refuse_auto_index=purpose == "cut_at",
        )

    def _change(self, change, recompile_models, optimizer) -> PretrainedBase:
        # Arguments are checked before any trainable flag changes, so a bad
        # call changes nothing.
        models = self._models_to_recompile(recompile_models, optimizer)
        trainable_before = self._trainable_weight_ids()
        change()
        self._after_change(trainable_before, models, optimizer)
        return self

    def _models_to_recompile(self, models, optimizer) -> tuple:
        if models is None:
            if optimizer is not None:
                raise ValueError("optimizer= is only used with recompile=model.")
            return ()
        models = tuple(models) if isinstance(models, (list, tuple)) else (models,)
        for model in models:
            if not isinstance(model, keras.Model):
                raise TypeError(
                    f"recompile={model!r} must be the keras.Model that contains this "
                    "base (or a list of them)."
                )
            if not contains_layer(model, self):
                raise ValueError(
                    f"recompile=model {model.name!r} does not contain this base "
                    f"{self.name!r}."
                )
            if not model.compiled:
                raise ValueError(
                    f"recompile=model: {model.name!r} is not compiled yet, so there is "
                    "nothing to recompile; call model.compile(...) after freezing, as "
                    "usual."
                )
        return models

    def _after_change(self, trainable_before, models, optimizer) -> None:
        """Recompiles ``models``, or warns when a compiled model would go stale.

        A model is stale when it trained since it was compiled (the base saw
        its train step run, see `freezing.note_train_steps`) and its train
        step was made for another set of trainable weights than the one the
        flags now give: a fully frozen base has no trainable weight, but the
        model around it has. When no train step of a model containing the
        base was seen (a custom training loop), the base's own trainable
        weights tell: a change after they moved warns.
        """
        for model in models:
            recompile(model, optimizer)
        changed = self._trainable_weight_ids() != trainable_before
        if changed:
            stale = [m for m in stale_models(self) if not any(m is x for x in models)]
            # No train step seen (a custom training loop): the base's own weights tell.
            unseen = not models and not getattr(self, "_seen_in_train_step", False)
            if stale or (unseen and self._trained_since_change(trainable_before)):
                warnings.warn(
                    _stale_compile_message(self.name, [m.name for m in stale]),
                    StaleCompileWarning,
                    stacklevel=_user_stacklevel(),
                )
        if changed or models:
            self._remember_trainable_weights()

    def _trainable_weight_ids(self) -> frozenset:
        return frozenset(id(v) for v in self.trainable_weights)

    def _remember_trainable_weights(self) -> None:
        """Records the trainable weights' values, to tell later whether they trained."""
        self._checksums = {id(v): _checksum(v) for v in self.trainable_weights}
        self._ran_since_change = False

    def _trained_since_change(self, trainable_ids) -> bool:
        """True when this base ran and a trainable weight changed since the last change.

        The weights' values tell training apart from inference (predicting,
        extracting features): a model compiled with the current trainable set
        has trained with it.
        """
        if not getattr(self, "_ran_since_change", False):
            return False
        return any(
            id(v) in self._checksums and _checksum(v) != self._checksums[id(v)]
            for v in self.weights
            if id(v) in trainable_ids
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

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()  # name, trainable, dtype (Keras' layer config)
        # weights=None: rebuilding from a config must never download anything;
        # the weights come from the .keras file (or the caller's load_weights).
        config.update(
            architecture=self.architecture.name,
            input_shape=list(self._base_input_shape),
            weights=None,
            pooling=self.pooling,
            output_layer=self.output_layer,
            preprocessing=self._preprocessing_arg,
            train_batchnorm=self.train_batchnorm,
            application_kwargs=dict(self._application_kwargs),
            frozen_ranges=self._frozen_ranges(),
        )
        return config

    @classmethod
    def from_config(
        cls, config: dict[str, Any], custom_objects: dict[str, Any] | None = None
    ) -> PretrainedBase:
        config = dict(config)
        config["weights"] = None
        if config.get("input_shape") is not None:
            config["input_shape"] = tuple(config["input_shape"])
        return cls(**config)


def _stale_compile_message(name: str, models=()) -> str:
    if models:
        which = ", ".join(repr(m) for m in models)
        several = len(models) > 1
        what = (
            f"{'Models' if several else 'Model'} {which} trained before this change to "
            f"the trainable weights of {name!r} and {'were' if several else 'was'} not "
            f"compiled since, so {'they' if several else 'it'} still "
            f"train{'' if several else 's'} the old set of weights"
        )
    else:
        what = (
            f"{name!r} has trained since its trainable weights last changed, so a "
            "model compiled before this change still trains the old set of weights"
        )
    return (
        f"{what}: Keras fixes what a model trains when it first trains after "
        "compile() (and Keras 3.15 does not warn). Until every model that contains "
        "the base is compiled again, on TensorFlow the layers you froze keep "
        "training (and those you unfroze stay frozen), on JAX fit() fails, and on "
        "PyTorch fit() fails for the layers you unfroze. Pass recompile=model (or a "
        "list of models) to the freezing call, or call model.compile(...) before "
        "the next fit(). trainable_summary(model) shows the layers concerned."
    )


def _user_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the user's line.

    That is the first caller outside this library and the frameworks (Keras'
    TensorFlow layers add frames of their own to ``base.trainable = ...``).
    Counted from the function that calls `warnings.warn`.
    """
    names = ("keras_smalldata", "keras", "tensorflow", "jax", "torch")
    files = (getattr(sys.modules.get(name), "__file__", None) for name in names)
    folders = tuple(os.path.dirname(file) + os.sep for file in files if file)
    frame = inspect.currentframe()  # this function's; level 2 is its caller's caller
    caller = frame.f_back if frame is not None else None
    frame, level = (caller.f_back if caller is not None else None), 2
    while frame is not None and frame.f_code.co_filename.startswith(folders):
        frame, level = frame.f_back, level + 1
    return level


def _checksum(variable) -> float:
    # A sum in float64 changes when any value changes (an exact cancellation
    # would need a coincidence); NumPy's sum is deterministic for one array.
    return float(np.sum(keras.ops.convert_to_numpy(variable), dtype=np.float64))


def _refuse_unknown_arguments(kwargs: dict) -> None:
    """TypeError for arguments the base does not take, with what to use instead."""
    for key, value in kwargs.items():
        if key in _APPLICATION_ONLY_ARGUMENTS:
            raise TypeError(
                f"PretrainedBase does not take `{key}`. {_APPLICATION_ONLY_ARGUMENTS[key]} "
                f"{args.received(key, value)}"
            )
    accepted = [
        "architecture", "input_shape", "weights", "pooling", "output_layer",
        "preprocessing", "train_batchnorm", "application_kwargs", "frozen_ranges",
        "name", "trainable", "dtype",
    ]
    args.check_unknown_keywords("PretrainedBase", kwargs, accepted)


@contextlib.contextmanager
def _global_dtype_policy(policy):
    """Builds layers under ``policy`` (Keras' global policy otherwise), then restores it."""
    if policy is None:
        yield
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


# ------------------------------------------------------------- layer look-ups


def find_blocks(layers, architecture: Architecture) -> dict[str, tuple[int, int]]:
    """The blocks of ``layers``: name -> (first index, last index), in layer order."""
    found: dict[str, list[int]] = {}
    for pattern in architecture.block_patterns:
        regex = re.compile(pattern)
        for index, layer in enumerate(layers):
            match = regex.match(layer.name)
            if match:
                span = found.setdefault(match.group(1), [index, index])
                span[1] = index
    return {k: (v[0], v[1]) for k, v in sorted(found.items(), key=lambda kv: kv[1][0])}


def layer_index(
    model,
    ref,
    architecture: Architecture,
    *,
    owner: str,
    label,
    block_end: bool,
    min_index: int = 0,
    refuse_auto_index: bool = False,
) -> int:
    """Turns a layer reference into an index into ``model.layers``.

    Names and layer objects are looked up by `keras_smalldata._models.resolve_layer`;
    here are what a base adds: indices, block names, and the refusal of
    names Keras made up.

    Args:
        model: A base (or the application being built).
        ref: A layer name, a block name (its first layer, or its last with
            ``block_end``), an index (negative allowed) or a layer object.
        architecture: The registry row (block patterns, landmarks).
        owner: What holds the layers, for messages (``"'vgg16'"``).
        label: ``label(ref)`` names the call in messages
            (``"freeze_until('block5')"``, ``"output_layer='block5'"``).
        block_end: Whether a block name means its last layer.
        min_index: The first index that may be referred to.
        refuse_auto_index: Whether an index of an auto-named layer is refused
            too (when the name, not the index, will be stored).
    """
    layers = model.layers
    count = len(layers)
    if isinstance(ref, bool) or not isinstance(ref, (int, str, keras.layers.Layer)):
        raise TypeError(
            f"{label(ref)}: pass a layer name, block name or index, not "
            f"{type(ref).__name__}."
        )
    if isinstance(ref, int):
        if not -count <= ref < count:
            raise ValueError(
                f"{label(ref)}: index out of range; {owner} has {count} layers "
                f"(indices {-count} to {count - 1})."
            )
        index = ref % count
        if index < min_index:
            raise ValueError(
                f"{label(ref)}: use an index from {min_index} to {count - 1} (or "
                "negative): layers 0 and 1 are the input and the preprocessing."
            )
        if refuse_auto_index and is_auto_named(layers[index]):
            _refuse_auto_name(layers, index, architecture, label, index_hint=False)
        return index
    blocks = find_blocks(layers, architecture)
    _, found = resolve_layer(
        model, ref, label=label, owner=owner, inputs=True, nested=False,
        blocks={name: layers[span[1 if block_end else 0]] for name, span in blocks.items()},
        suggest=lambda layer: not is_auto_named(layer),
        listing="See [layer.name for layer in base.layers] for all layer names.",
    )
    index = next(i for i, layer in enumerate(layers) if layer is found)
    if ref == found.name and is_auto_named(found):
        _refuse_auto_name(layers, index, architecture, label, index_hint=not refuse_auto_index)
    return index


def _refuse_auto_name(layers, index: int, architecture, label, index_hint: bool):
    name = layers[index].name
    before = next((i for i in range(index - 1, -1, -1) if not is_auto_named(layers[i])), None)
    after = next(
        (i for i in range(index + 1, len(layers)) if not is_auto_named(layers[i])), None
    )
    hints = []
    if index_hint:
        hints.append(f"its index: {label(index)}  (base.layers[{index}])")
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
    if architecture.landmarks:
        marks = [layer.name for layer in layers if re.match(architecture.landmarks, layer.name)]
        if marks:
            hints.append(f"stable block outputs of {architecture.name}: {marks}")
    raise ValueError(
        f"{label(name)}: {name!r} is an automatic layer name. Keras numbers "
        "unnamed layers per session, so this layer has another name in the next "
        "model you build or load and the call would not mean the same thing. "
        "Use instead:\n  - " + "\n  - ".join(hints)
    )


# ------------------------------------------------------------------ building


def _check_input_shape(input_shape, spec: Architecture) -> tuple:
    if input_shape is None:
        return (spec.default_size, spec.default_size, 3)
    try:
        shape = tuple(None if d is None else int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise TypeError(
            f"`input_shape` must be a tuple (height, width, 3). "
            f"{args.received('input_shape', input_shape)}"
        ) from None
    if len(shape) != 3 or shape[-1] != 3:
        raise ValueError(
            "`input_shape` must be (height, width, 3): RGB pictures, channels last, "
            f"without the batch axis. {args.received('input_shape', input_shape)}"
        )
    for side in shape[:2]:
        if side is not None and side < spec.min_size:
            raise ValueError(
                f"`input_shape` is too small for {spec.name}: each side must be at "
                f"least {spec.min_size} pixels (default size {spec.default_size}). "
                f"{args.received('input_shape', input_shape)}"
            )
    return shape


def _check_weights(weights):
    if weights is None or weights == "imagenet":
        return weights
    if isinstance(weights, (str, os.PathLike)):
        return check_weights_path(weights)
    raise TypeError(
        "`weights` must be 'imagenet', None or the path of a weights file. "
        f"{args.received('weights', weights)}"
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
        application = build_with_imagenet_weights(spec, build, application_kwargs, input_shape)
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
    index = layer_index(
        application, output_layer, spec, owner=spec.name,
        label=lambda value: f"output_layer={value!r}", block_end=True, min_index=2,
    )
    return inputs, _add_pooling(application.layers[index].output, pooling)
