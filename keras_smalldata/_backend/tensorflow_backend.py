"""What the library does differently on the TensorFlow backend.

Also home of `tf_function`, the library's ``tf.function``: the ``tf.data``
pipelines of every backend compile with it too (see
`keras_smalldata.augment._tf_data`).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading

from keras_smalldata._backend.interface import FUNCTIONS

# The interface they all share, re-exported by keras_smalldata._backend.
__all__ = list(FUNCTIONS)


def _tf():
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    import tensorflow

    return tensorflow


def gradient_function(fn):
    """Turns ``fn(source, *args) -> (target, aux)`` into ``g(source, *args) -> (gradient, aux)``.

    ``gradient`` is the gradient of ``sum(target)`` with respect to ``source``:
    a tensor of the running backend, zeros (never None) where ``target`` does
    not depend on ``source``. ``aux`` comes back as ``fn`` computed it (detached
    from autograd on PyTorch). To differentiate with respect to a tensor computed
    in the middle of ``fn``, such as an intermediate activation, add ``source``
    (zeros of its shape, a "probe") to that tensor inside ``fn``: the gradient
    with respect to the probe is the gradient with respect to the tensor.
    """
    tf = _tf()

    def gradient(source, *args):
        # Only `source` is watched: the model's variables are not differentiated.
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(source)
            target, aux = fn(source, *args)
            total = tf.reduce_sum(target)
        zeros = tf.UnconnectedGradients.ZERO
        return tape.gradient(total, source, unconnected_gradients=zeros), aux

    return gradient


def compile_function(fn, variables=(), reduce_retracing: bool = False):
    """Compiles ``fn(*tensors)`` where the backend has a compiler.

    ``variables`` are the Keras variables ``fn`` reads (e.g. ``model.variables``);
    every call sees their current values, also after more training. The Python
    body of ``fn`` runs only while tracing on TensorFlow and JAX.
    ``reduce_retracing=True`` lets one TensorFlow trace serve several batch sizes.
    """
    # A tf.function reads the variables it closes over when it runs.
    return tf_function(fn, reduce_retracing=reduce_retracing)


def xla_function(fn):
    """Compiles a pure ``fn(*tensors)`` with XLA where the backend has a compiler.

    ``tf.function(jit_compile=True)`` on TensorFlow, ``jax.jit`` on JAX,
    ``fn`` itself on PyTorch (eager). One TensorFlow trace serves every batch
    size; XLA compiles once per input shape.
    """
    return tf_function(fn, jit_compile=True, reduce_retracing=True)


def fused_batch_normalization(x, mean, variance, offset, scale, epsilon: float):
    """Batch normalisation of ``x`` over its last axis with given statistics, as one op.

    Computes ``(x - mean) / sqrt(variance + epsilon) * scale + offset`` (what
    `keras.ops.batch_normalization` computes, to float rounding) for a 4-D
    float32 ``x``. On TensorFlow this is one ``FusedBatchNormV3`` op in
    inference mode, which TensorFlow's graph optimizer merges with the
    convolution before it (Keras' own batch normalisation is two element-wise
    passes over the feature map). Returns None on the other backends, whose
    compilers fuse (JAX) or which run eagerly (PyTorch).
    """
    y, _, _ = _tf().compat.v1.nn.fused_batch_norm(
        x, scale, offset, mean=mean, variance=variance, epsilon=epsilon, is_training=False
    )
    return y


def accelerator_available() -> bool:
    """True when the backend computes on a GPU or TPU rather than the CPU."""
    config = _tf().config
    return bool(config.list_logical_devices("GPU") or config.list_logical_devices("TPU"))


def model_scope(model):
    """The context in which ``model``'s own variables are created.

    On TensorFlow that is the scope of the `tf.distribute` strategy the model
    was built under (``model.distribute_strategy``): compiling a model built
    under ``MirroredStrategy`` outside its scope fails with "Mixing different
    tf.distribute.Strategy objects". JAX (``keras.distribution``) and PyTorch
    need no scope.
    """
    return model.distribute_strategy.scope()


def in_model_scope(model, variable) -> bool:
    """True when ``variable`` was created in ``model``'s scope (see `model_scope`).

    Only TensorFlow has such scopes: a variable made outside the model's
    `tf.distribute` strategy (an optimizer created outside
    ``strategy.scope()``) cannot be used with it. Always True elsewhere.
    """
    return model.distribute_strategy.extended.variable_created_in_scope(variable.value)


def replica_count(model) -> int:
    """How many devices a batch through ``model`` is split across.

    On TensorFlow, the replicas of the `tf.distribute` strategy the model was
    built under (``model.predict`` splits each batch across them); 1 on the
    other backends.
    """
    strategy = getattr(model, "distribute_strategy", None)
    return int(getattr(strategy, "num_replicas_in_sync", 1))


def shard_batch(images):
    """``images`` placed for a `keras.distribution` (JAX); as they are elsewhere."""
    return images


def in_tf_data_graph() -> bool:
    """True while TensorFlow traces a ``tf.data`` function (``dataset.map(...)``).

    Under the TensorFlow backend a layer cannot tell a ``tf.data`` graph from
    a ``tf.function`` by its tensors. It matters for random draws: ``map``
    with ``num_parallel_calls`` runs the function concurrently, and a
    `keras.random.SeedGenerator` reads and then writes its state, so two
    batches can get the same draws. ``tf.data`` names its function graphs
    ``Dataset_<transformation>_<function>``. Always False on the other
    backends, where a layer in ``tf.data`` gets TensorFlow tensors instead
    of the backend's.
    """
    graph = _tf().compat.v1.get_default_graph()
    while graph is not None:
        if (getattr(graph, "name", None) or "").startswith("Dataset_"):
            return True
        graph = getattr(graph, "outer_graph", None)
    return False


# ---------------------------------------------------------------------------
# The library's tf.function, and TensorFlow's retracing warning about it.

# The functions this library compiled, as TensorFlow's log names them.
_OWN_FUNCTION_NAMES: set[str] = set()


class _OwnRetracingFilter(logging.Filter):
    """Drops TensorFlow's "triggered tf.function retracing" warning about our functions.

    Each new model, layer or picture size gets a new compiled function by
    design (one trace each, cached); TensorFlow counts their first traces as
    retracing and blames the user's code ("creating @tf.function repeatedly
    in a loop"). The warning about any other function still appears.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "triggered tf.function retracing" not in message:
            return True
        return not any(name in message for name in _OWN_FUNCTION_NAMES)


_FILTER = _OwnRetracingFilter()
_FILTER_LOCK = threading.Lock()
_FILTER_USERS = 0


@contextlib.contextmanager
def own_retracing_quiet():
    """Within the ``with``, TensorFlow's logger drops its retracing warning about our functions.

    The filter is on TensorFlow's logger only while one of the library's
    compiled functions runs (it is traced then), never process-wide: the
    warning about the user's own functions always appears.
    """
    global _FILTER_USERS
    logger = _tf().get_logger()
    with _FILTER_LOCK:
        if _FILTER_USERS == 0:
            logger.addFilter(_FILTER)
        _FILTER_USERS += 1
    try:
        yield
    finally:
        with _FILTER_LOCK:
            _FILTER_USERS -= 1
            if _FILTER_USERS == 0:
                logger.removeFilter(_FILTER)


def tf_function(fn, **kwargs):
    """``tf.function(fn, autograph=False, **kwargs)``, quiet about its own first traces.

    Each call runs within `own_retracing_quiet`.
    """
    tf = _tf()
    _OWN_FUNCTION_NAMES.add(f"<function {fn.__qualname__} at ")
    function = tf.function(fn, autograph=False, **kwargs)

    def call(*args):
        with own_retracing_quiet():
            return function(*args)

    return call
