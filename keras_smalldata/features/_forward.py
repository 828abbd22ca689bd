"""The compiled inference call used by feature extraction."""

from __future__ import annotations

import weakref

import keras
import numpy as np

from keras_smalldata._backend import is_tensorflow, tensorflow


def _check_single(outputs):
    if isinstance(outputs, (list, tuple, dict)):
        raise ValueError(
            "The model has several outputs; extract_features needs a model with one "
            "output (the features). Build one, e.g. "
            "`keras.Model(model.input, model.get_layer(NAME).output)`."
        )
    return outputs


# model -> {(image_shape, dtype, jit): traced function}. The functions hold
# the model weakly, so this does not keep models alive, and a second call with
# the same model does not trace again.
_TRACED = weakref.WeakKeyDictionary()


def _traced_call(model, image_shape: tuple, dtype: str, jit: bool):
    tf = tensorflow()
    per_model = _TRACED.setdefault(model, {})
    key = (tuple(image_shape), dtype, jit)
    if key not in per_model:
        spec = tf.TensorSpec((None,) + tuple(image_shape), dtype)
        model_ref = weakref.ref(model)

        @tf.function(input_signature=[spec], jit_compile=jit)
        def call(images):
            return _check_single(model_ref()(images, training=False))

        per_model[key] = call
    return per_model[key]


def _supports_jit(model) -> bool:
    """Whether XLA may compile the model (Keras' own per-layer flag)."""
    stack, seen = [model], set()
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if not getattr(layer, "supports_jit", True):
            return False
        stack.extend(getattr(layer, "layers", None) or [])
    try:  # as Keras does: XLA lacks deterministic versions of some ops
        from tensorflow.python.framework.config import is_op_determinism_enabled
    except ImportError:  # pragma: no cover
        return True
    return not is_op_determinism_enabled()


class _TensorFlowForward:
    """``forward(images) -> np.ndarray`` with one `tf.function` per model.

    With XLA (``jit=True``) every distinct batch shape is compiled once, so
    a shorter last batch is padded with zeros to the first batch's size and
    the padding rows are dropped from the output: one compilation for the
    whole pass. In inference mode the rows of a batch do not affect each
    other, so padding changes nothing in the real rows. If XLA cannot
    compile the model and ``jit_compile`` was "auto", the plain
    `tf.function` is used instead.
    """

    def __init__(self, model, image_shape, dtype, jit: bool, strict: bool):
        self.model = model
        self.image_shape = tuple(image_shape)
        self.dtype = dtype
        self.jit = jit
        self.strict = strict
        self.batch_size = None
        self.checked = False

    def __call__(self, images):
        tf = tensorflow()
        images = tf.convert_to_tensor(images)
        if images.dtype != self.dtype:
            images = tf.cast(images, self.dtype)
        count = int(images.shape[0])
        if not self.jit:
            return _traced_call(self.model, self.image_shape, self.dtype, False)(images).numpy()
        if self.batch_size is None:
            self.batch_size = count
        if count < self.batch_size:
            padding = tf.zeros((self.batch_size - count,) + tuple(images.shape[1:]), images.dtype)
            images = tf.concat([images, padding], axis=0)
        call = _traced_call(self.model, self.image_shape, self.dtype, True)
        if self.checked:
            return call(images).numpy()[:count]
        try:
            outputs = call(images).numpy()[:count]
        except ValueError:
            raise  # our own checks (several outputs)
        except Exception:
            if self.strict:
                raise
            self.jit = False  # XLA cannot compile this model: plain tf.function
            return self(images[:count])
        self.checked = True
        return outputs


def make_forward(model, image_shape: tuple, dtype: str, jit_compile="auto"):
    """Returns ``forward(images) -> np.ndarray`` running ``model(images, training=False)``.

    On TensorFlow this is a `tf.function` traced once per model and image
    shape, compiled with XLA when ``jit_compile`` is True, or "auto" and
    every layer allows it; elsewhere it is `model.predict_on_batch`
    (compiled by the backend).
    """
    if is_tensorflow():
        jit = jit_compile is True or (jit_compile == "auto" and _supports_jit(model))
        return _TensorFlowForward(model, image_shape, dtype, jit, strict=jit_compile is True)

    def forward(images):  # pragma: no cover - other backends
        images = keras.ops.cast(keras.ops.convert_to_tensor(images), dtype)
        return np.asarray(_check_single(model.predict_on_batch(images)))

    return forward
