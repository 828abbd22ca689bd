"""Class activation maps: where in a picture the evidence for a class is.

Three methods share one call shape:

- ``"gradcam"`` (Selvaraju et al., 2017): each channel k of a conv feature
  map A is weighted by the spatial mean of d(score)/dA_k; the map is
  ReLU(sum_k weight_k A_k).
- ``"gradcam++"`` (Chattopadhyay et al., 2018): per-position weights from
  the first, second and third derivatives (computed, as in the paper, from
  the gradient of an exponential of the score), which handles several
  instances of a class better.
- ``"scorecam"`` (Wang et al., 2020): no gradients; each channel, upsampled
  and scaled to [0, 1], masks the picture and the class probability the
  model gives the masked picture is the channel's weight (softmax over
  channels). One forward pass per channel and picture: slow.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Sequence

import keras
import numpy as np

from keras_smalldata._arguments import check_positive_int
from keras_smalldata.viz._gradients import (
    FunctionCache,
    compile_function,
    gradient_recorder,
)
from keras_smalldata.viz._layers import _check_model, is_model, resolve_layer
from keras_smalldata.viz._recording import (
    OutputScores,
    all_layers_recorder,
    as_batch,
    output_scores,
    predict_scores,
)

METHODS = ("gradcam", "gradcam++", "scorecam")

_CONV_TYPES = (
    keras.layers.Conv2D,
    keras.layers.SeparableConv2D,
    keras.layers.DepthwiseConv2D,
    keras.layers.Conv2DTranspose,
)
# Layers that may follow the last convolution and still belong to its block:
# the Keras example picks e.g. "block14_sepconv2_act" (Xception) or
# "conv5_block3_out" (ResNet50), the output of the last block.
_BLOCK_TAIL_TYPES = (
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.GroupNormalization,
    keras.layers.Activation,
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.PReLU,
    keras.layers.ELU,
    keras.layers.Add,
    keras.layers.Concatenate,
    keras.layers.Dropout,
    keras.layers.SpatialDropout2D,
)


def _is_conv_like(layer) -> bool:
    if isinstance(layer, _CONV_TYPES):
        return True
    # Convolutions from other packages (keras-cv, keras-hub, custom layers).
    return "conv" in type(layer).__name__.lower() and hasattr(layer, "kernel_size")


def _rank4(output) -> bool:
    return keras.ops.is_tensor(output) and len(output.shape) == 4


def _last_conv_path(calls) -> str | None:
    """The output of the last convolution's block, in the order layers ran."""
    calls = [c for c in calls if not is_model(c.layer)]
    last = None
    for index, call in enumerate(calls):
        if _is_conv_like(call.layer) and _rank4(call.output):
            last = index
    if last is None:
        return None
    height, width = calls[last].output.shape[1:3]
    for index in range(last + 1, len(calls)):
        call = calls[index]
        if not (
            isinstance(call.layer, _BLOCK_TAIL_TYPES)
            and _rank4(call.output)
            and tuple(call.output.shape[1:3]) == (height, width)
        ):
            break
        last = index
    return calls[last].path


def find_last_conv_layer(model: keras.Model, images) -> str:
    """Returns the path of the layer Grad-CAM uses by default.

    The model is run once on ``images`` and the layers are taken in the order
    they actually ran (nested models included): the last convolution with a
    4-D output, extended over the normalisation, activation, addition or
    concatenation layers that directly follow it at the same spatial size.
    So, nested in a model, VGG16 gives ``"vgg16/block5_conv3"``, ResNet50
    ``"resnet50/conv5_block3_out"`` and Xception
    ``"xception/block14_sepconv2_act"``.

    Args:
        model: A Keras model.
        images: One picture or a batch, as the model expects them.

    Returns:
        A layer path usable as ``layer=`` anywhere in `keras_smalldata.viz`.

    Raises:
        ValueError: When the model has no convolution with a 4-D output.

    Example:

    ```python
    find_last_conv_layer(model, images[:1])
    # 'vgg16/block5_conv3'
    ```
    """
    _check_model(model)
    batch, _ = as_batch(images)
    with all_layers_recorder(model) as recorder:
        recorder.run(model, batch[:1])
        path = _last_conv_path(recorder.calls)
    if path is None:
        raise ValueError(
            f"model {model.name!r} has no convolution layer with a 4-D (batch, "
            "height, width, channels) output; pass layer= explicitly."
        )
    return path


@dataclasses.dataclass
class ClassActivationMaps:
    """Class activation maps for a batch, with what they explain.

    Attributes:
        heatmaps: float32 array (batch, height, width) in [0, 1].
        class_index: The class each map explains, int array (batch,).
        predicted: The predicted class of each picture, int array (batch,).
        probability: The model's probability for the predicted class,
            float array (batch,).
        class_probability: The model's probability for the explained class.
        layer: Path of the layer whose feature map was used.
        method: "gradcam", "gradcam++" or "scorecam".
    """

    heatmaps: np.ndarray
    class_index: np.ndarray
    predicted: np.ndarray
    probability: np.ndarray
    class_probability: np.ndarray
    layer: str
    method: str


def _class_columns(probabilities: np.ndarray, units: int):
    """(predicted class, per-class probability matrix with 2 columns for 1 sigmoid unit)."""
    if units == 1:
        p = probabilities[:, 0]
        table = np.stack([1.0 - p, p], axis=1)
    else:
        table = probabilities
    return np.argmax(table, axis=1).astype("int64"), table


def _requested_classes(class_index, total: int) -> np.ndarray:
    """The class asked for each picture, -1 meaning "its predicted class"."""
    if class_index is None:
        return np.full(total, -1, dtype="int32")
    if isinstance(class_index, (bool, np.bool_)):
        raise TypeError(
            f"class_index must be an int or a sequence of ints, got {class_index!r}."
        )
    if isinstance(class_index, (int, np.integer)):
        classes = np.full(total, int(class_index), dtype="int64")
    else:
        classes = np.asarray(class_index)
        if classes.ndim != 1 or not (
            np.issubdtype(classes.dtype, np.integer) or classes.size == 0
        ):
            raise TypeError(
                "class_index must be None, an int or a sequence of ints (one per "
                f"picture), got {class_index!r}."
            )
        if len(classes) != total:
            raise ValueError(
                f"class_index has {len(classes)} entries for {total} pictures: pass "
                "one class per picture, one int for all, or None for the predicted "
                "classes."
            )
    if np.any(classes < 0):
        raise ValueError(
            f"class_index {int(classes[classes < 0][0])} is negative; classes are "
            "numbered from 0."
        )
    return classes.astype("int32")


def _check_class_range(classes: np.ndarray, n_classes: int) -> None:
    bad = classes[classes >= n_classes]
    if bad.size:
        kind = "one sigmoid unit: 0 or 1" if n_classes == 2 else f"0 to {n_classes - 1}"
        raise ValueError(
            f"class_index {int(bad[0])} is out of range for this model's output "
            f"({kind})."
        )


def _class_table(probabilities, units: int):
    """Per-class probabilities; one sigmoid unit p becomes two columns (1 - p, p)."""
    if units == 1:
        return keras.ops.concatenate([1.0 - probabilities, probabilities], axis=1)
    return probabilities


def _class_scores(scores: OutputScores, classes):
    """Per-picture score of its class, before the final softmax/sigmoid."""
    logits = scores.logits
    if scores.units == 1:
        # One sigmoid unit: the "other" class (0) is explained by -logit.
        sign = 2.0 * keras.ops.cast(classes, logits.dtype) - 1.0
        return logits[:, 0] * sign
    one_hot = keras.ops.one_hot(classes, scores.units, dtype=logits.dtype)
    return keras.ops.sum(logits * one_hot, axis=-1)


def _cam_pass(model, path, with_gradients: bool, meta: dict):
    """One forward (and backward) pass giving everything a class activation map needs.

    The returned function maps ``(images, requested)`` (requested: int per
    picture, -1 for the predicted class) to a dict with the feature map, its
    gradient, the per-class probabilities, the predicted and the explained
    classes. ``meta`` receives the layer path and the output kind at trace time.
    """
    model_ref = weakref.ref(model)

    def forward(images, requested):
        model = model_ref()
        with gradient_recorder() as tape:
            with all_layers_recorder(model, on_output=tape.watch) as recorder:
                outputs = recorder.run(model, images)
            target_path = path or _last_conv_path(recorder.calls)
            if target_path is None:
                raise ValueError(
                    f"model {model.name!r} has no convolution layer with a 4-D "
                    "(batch, height, width, channels) output; pass layer= explicitly."
                )
            target = recorder.single_call(target_path, model)
            if not _rank4(target.output):
                raise ValueError(
                    f"layer={target_path!r} outputs shape "
                    f"{tuple(getattr(target.output, 'shape', ()))}; class activation "
                    "maps need a 4-D (batch, height, width, channels) feature map, "
                    "e.g. the last convolution."
                )
            scores = output_scores(recorder, outputs, model)
            table = _class_table(scores.probabilities(), scores.units)
            predicted = keras.ops.cast(keras.ops.argmax(table, axis=1), "int32")
            chosen = keras.ops.where(requested < 0, predicted, requested)
            class_score = _class_scores(scores, chosen)
        meta.update(layer=target_path, kind=scores.kind, units=scores.units)
        result = {
            "activations": target.output,
            "table": table,
            "predicted": predicted,
            "chosen": chosen,
        }
        if with_gradients:
            result["gradients"] = tape.gradient(class_score, target.output)
        return result

    return forward


_PASSES = FunctionCache(size=4)
_PREDICTS = FunctionCache(size=4)


def _gradcam_weights(activations, gradients, method):
    if method == "gradcam":
        return np.mean(gradients, axis=(1, 2))
    # Grad-CAM++ with Y = exp(score): dY/dA = Y g, d2 = Y g^2, d3 = Y g^3; the
    # positive factor Y cancels in alpha and in the final normalisation.
    g2 = gradients**2
    g3 = g2 * gradients
    total = np.sum(activations, axis=(1, 2), keepdims=True)
    denominator = 2.0 * g2 + total * g3
    alpha = g2 / np.where(denominator != 0.0, denominator, 1.0)
    # As the authors' reference code: alphas of a channel sum to 1.
    alpha_sum = np.sum(alpha, axis=(1, 2), keepdims=True)
    alpha = alpha / np.where(alpha_sum != 0.0, alpha_sum, 1.0)
    return np.sum(alpha * np.maximum(gradients, 0.0), axis=(1, 2))


def _resize_maps(maps: np.ndarray, size) -> np.ndarray:
    resized = keras.ops.image.resize(
        keras.ops.convert_to_tensor(maps[..., None], dtype="float32"),
        size,
        interpolation="bilinear",
    )
    return keras.ops.convert_to_numpy(resized)[..., 0]


def normalize_heatmaps(maps: np.ndarray) -> np.ndarray:
    """Scales each map of a batch to [0, 1] by its maximum; all-zero maps stay zeros.

    Negative values are cut to 0 first (a ReLU). A map whose maximum is 0 (or
    not finite) becomes all zeros, never NaN.

    Args:
        maps: An array (batch, height, width) of raw class activation maps.

    Returns:
        A float32 array of the same shape with values in [0, 1].

    Example:

    ```python
    normalize_heatmaps(np.array([[[0.0, 2.0]], [[0.0, 0.0]]])).tolist()
    # [[[0.0, 1.0]], [[0.0, 0.0]]]
    ```
    """
    maps = np.nan_to_num(
        np.maximum(np.asarray(maps, dtype="float64"), 0.0), nan=0.0, posinf=0.0
    )
    axes = tuple(range(1, maps.ndim))
    peak = maps.max(axis=axes, keepdims=True)
    ok = peak > 1e-12
    return np.where(ok, maps / np.where(ok, peak, 1.0), 0.0).astype("float32")


def _score_cam(model, predict, batch, activations, classes, kind, batch_size, progbar):
    height, width = batch.shape[1:3]
    maps = []
    for i in range(activations.shape[0]):
        channels = np.transpose(activations[i], (2, 0, 1))  # (k, h, w)
        masks = _resize_maps(channels, (height, width))
        low = masks.min(axis=(1, 2), keepdims=True)
        span = masks.max(axis=(1, 2), keepdims=True) - low
        masks = np.where(span > 0, (masks - low) / np.where(span > 0, span, 1.0), 0.0)
        picture = keras.ops.convert_to_numpy(batch[i])
        probabilities = []
        for start in range(0, masks.shape[0], batch_size):
            masked = picture[None] * masks[start : start + batch_size, :, :, None]
            outputs = predict(keras.ops.convert_to_tensor(masked, dtype=batch.dtype))
            probs = OutputScores(outputs, outputs, kind).probabilities()
            table = keras.ops.convert_to_numpy(
                _class_table(probs, int(probs.shape[-1]))
            )
            probabilities.append(table[:, classes[i]])
            if progbar is not None:
                progbar.add(1)
        scores = np.concatenate(probabilities).astype("float64")
        weights = np.exp(scores - scores.max())
        weights /= weights.sum()
        maps.append(np.tensordot(activations[i], weights, axes=([2], [0])))
    return np.maximum(np.stack(maps), 0.0)


def _compiled_pass(model, path, with_gradients):
    meta: dict = {}
    return (
        compile_function(
            _cam_pass(model, path, with_gradients, meta), reduce_retracing=True
        ),
        meta,
    )


def _compiled_predict(model):
    model_ref = weakref.ref(model)
    return compile_function(
        lambda x: model_ref()(x, training=False), reduce_retracing=True
    )


class ClassPredictor:
    """Per-class probabilities for batches of pictures, compiled after the first batch.

    The first call finds (eagerly, on one picture) what ends the model: a
    softmax, a sigmoid or raw scores; later batches run as a compiled
    ``model(x, training=False)``. One sigmoid unit gives two columns (1 - p, p).
    """

    def __init__(self, model, run_eagerly: bool = False):
        self._model = model
        self._run_eagerly = run_eagerly
        self._kind = None

    def __call__(self, images):
        """Returns ``(predicted, table)``: int64 (batch,) and float64 (batch, classes)."""
        if self._kind is None:
            self._kind = predict_scores(self._model, images[:1]).kind
        if self._run_eagerly:
            outputs = self._model(images, training=False)
        else:
            predict = _PREDICTS.get(
                self._model, (), lambda: _compiled_predict(self._model)
            )
            outputs = predict(images)
        probabilities = OutputScores(outputs, outputs, self._kind).probabilities()
        probabilities = keras.ops.convert_to_numpy(probabilities).astype("float64")
        return _class_columns(probabilities, probabilities.shape[-1])


def class_activation_maps(
    model: keras.Model,
    images,
    class_index: int | Sequence[int] | None = None,
    layer: str | keras.layers.Layer | None = None,
    method: str = "gradcam",
    resize: bool = True,
    batch_size: int = 32,
    verbose: int | str = "auto",
    run_eagerly: bool = False,
) -> ClassActivationMaps:
    """Computes class activation maps and returns them with the classes they explain.

    Same arguments as `grad_cam`; returns a `ClassActivationMaps` holding the
    heatmaps, the explained and predicted classes and their probabilities.
    """
    _check_model(model)
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not one of {list(METHODS)}.")
    check_positive_int("batch_size", batch_size)
    if not isinstance(resize, bool):
        raise TypeError(f"resize must be True or False, got {resize!r}.")
    batch, _ = as_batch(images)
    total = int(batch.shape[0])
    requested_all = _requested_classes(class_index, total)
    path = resolve_layer(model, layer)[0] if layer is not None else None
    with_gradients = method != "scorecam"
    meta: dict = {}
    if run_eagerly:
        cam_pass = _cam_pass(model, path, with_gradients, meta)
    else:
        cam_pass, meta = _PASSES.get(
            model,
            (path, with_gradients),
            lambda: _compiled_pass(model, path, with_gradients),
        )
    show = (
        verbose == "auto" and method == "scorecam" or verbose not in ("auto", 0, False)
    )
    progbar = None
    parts = {
        key: []
        for key in ("maps", "classes", "predicted", "probability", "class_probability")
    }
    for start in range(0, total, batch_size):
        chunk = batch[start : start + batch_size]
        requested = requested_all[start : start + batch_size]
        result = cam_pass(chunk, keras.ops.convert_to_tensor(requested))
        table = keras.ops.convert_to_numpy(result["table"]).astype("float64")
        _check_class_range(requested, table.shape[1])
        predicted = keras.ops.convert_to_numpy(result["predicted"]).astype("int64")
        classes = keras.ops.convert_to_numpy(result["chosen"]).astype("int64")
        activations = keras.ops.convert_to_numpy(result["activations"]).astype(
            "float64"
        )
        if method == "scorecam":
            if progbar is None and show:
                steps = -(-int(activations.shape[-1]) // batch_size) * total
                progbar = keras.utils.Progbar(steps, unit_name="batch")
            predict = (
                model
                if run_eagerly
                else _PREDICTS.get(model, (), lambda: _compiled_predict(model))
            )
            maps = _score_cam(
                model,
                predict,
                chunk,
                activations,
                classes,
                meta["kind"],
                batch_size,
                progbar,
            )
        else:
            gradients = keras.ops.convert_to_numpy(result["gradients"]).astype(
                "float64"
            )
            weights = _gradcam_weights(activations, gradients, method)
            maps = np.maximum(np.einsum("nhwk,nk->nhw", activations, weights), 0.0)
        if resize:
            maps = _resize_maps(normalize_heatmaps(maps), tuple(chunk.shape[1:3]))
        parts["maps"].append(normalize_heatmaps(maps))
        parts["classes"].append(classes)
        parts["predicted"].append(predicted)
        rows = np.arange(len(predicted))
        parts["probability"].append(table[rows, predicted])
        parts["class_probability"].append(table[rows, classes])
    path = meta["layer"]
    return ClassActivationMaps(
        heatmaps=np.concatenate(parts["maps"]),
        class_index=np.concatenate(parts["classes"]),
        predicted=np.concatenate(parts["predicted"]),
        probability=np.concatenate(parts["probability"]).astype("float32"),
        class_probability=np.concatenate(parts["class_probability"]).astype("float32"),
        layer=path,
        method=method,
    )


def grad_cam(
    model: keras.Model,
    images,
    class_index: int | Sequence[int] | None = None,
    layer: str | keras.layers.Layer | None = None,
    method: str = "gradcam",
    resize: bool = True,
    batch_size: int = 32,
    verbose: int | str = "auto",
    run_eagerly: bool = False,
) -> np.ndarray:
    """Class activation heatmaps (Grad-CAM, Grad-CAM++ or Score-CAM) for a batch.

    Every picture gets its own map, for its own class. The model runs once per
    batch of pictures, as ``model(images, training=False)``; the feature map
    and the class score come from that one pass, so a base nested in the
    model (``vgg16/block5_conv3``, a `PretrainedBase`), Sequential,
    Functional and subclassed models all work, without "Graph disconnected"
    errors, and the model is never changed.

    The score explained is the one *before* the final softmax or sigmoid
    when the model's output layer is a `Dense` with that activation (it is
    recomputed from the Dense's input, kernel and bias) or an `Activation` /
    `Softmax` layer: a saturated softmax does not zero the gradients. For a
    single sigmoid unit, class 1 is explained by the logit and class 0 by
    its negation. A model whose output is already logits works as is.

    Args:
        model: A Keras model with one output of shape (batch, classes) or
            (batch, 1) for a sigmoid.
        images: Pictures as the model expects them (same size and value
            range as in training), shape (batch, height, width, channels),
            or one picture (height, width, channels).
        class_index: None (default) explains each picture's predicted class;
            an int explains that class for every picture; a sequence gives
            one class per picture. For one sigmoid unit the classes are 0
            and 1.
        layer: The feature map to use (a path such as
            ``"vgg16/block5_conv3"``, a name, or a Layer). None finds the
            last convolution block (see `find_last_conv_layer`).
        method: ``"gradcam"`` (default), ``"gradcam++"`` or ``"scorecam"``.
        resize: True (default) returns maps at the pictures' resolution
            (bilinear); False at the feature map's.
        batch_size: Pictures per forward pass; for Score-CAM, also masked
            pictures per forward pass.
        verbose: "auto" shows a progress bar for Score-CAM only; 0 never,
            1 always.
        run_eagerly: False (default) runs the pass as a compiled graph
            (traced once per model, layer and batch shape, then reused);
            True runs it eagerly, for debugging.

    Returns:
        A float32 array (batch, height, width) with values in [0, 1] (each
        map divided by its maximum; a map with no positive evidence is all
        zeros, never NaN), or (height, width) for one picture.

    Example:

    ```python
    heatmaps = grad_cam(model, images)            # predicted classes
    heatmaps = grad_cam(model, images, class_index=[0, 1, 1, 0])
    overlay = overlay_heatmap(images[0], heatmaps[0])
    ```
    """
    result = class_activation_maps(
        model,
        images,
        class_index,
        layer,
        method,
        resize,
        batch_size,
        verbose,
        run_eagerly,
    )
    single = len(np.shape(images)) == 3
    return result.heatmaps[0] if single else result.heatmaps
