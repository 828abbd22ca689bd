"""The one place that knows which Keras backend is running.

What differs from one backend to another goes through the small helpers here:
``tf.data`` under every backend, gradients (``tf.GradientTape``, ``jax.grad``,
``torch.autograd.grad``) and compiled functions (``tf.function``, ``jax.jit``),
so that the rest of the code stays written against ``keras.ops``.
"""

from __future__ import annotations

import logging
import sys
import weakref


def backend_name() -> str:
    """Returns the name of the running Keras backend ("tensorflow", "jax"...)."""
    import keras

    return keras.backend.backend()


def is_tensorflow() -> bool:
    """Returns True when Keras runs on the TensorFlow backend."""
    return backend_name() == "tensorflow"


def tensorflow():
    """Imports and returns the ``tensorflow`` module, quietly.

    The first import goes through `_startup.import_tensorflow_quietly`, which
    drops TensorFlow's C++ start-up notices (they ignore
    ``TF_CPP_MIN_LOG_LEVEL``); ``TF_CPP_MIN_LOG_LEVEL=0`` keeps them.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    from keras_smalldata._startup import import_tensorflow_quietly

    return import_tensorflow_quietly()


# ---------------------------------------------------------------------------
# Gradients and compiled functions (for viz). Keras 3 has no backend-neutral way
# to differentiate, so each backend has one small function per job below; the
# rest of the library calls `gradient_function`, `compile_function` and
# `accelerator_available`, and stays written to `keras.ops`.


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
    return _for_backend(
        {
            "tensorflow": _tensorflow_gradient,
            "jax": _jax_gradient,
            "torch": _torch_gradient,
        }
    )(fn)


def compile_function(fn, variables=(), reduce_retracing: bool = False):
    """Compiles ``fn(*tensors)`` where the backend has a compiler.

    ``variables`` are the Keras variables ``fn`` reads (e.g. ``model.variables``);
    every call sees their current values, also after more training. The Python
    body of ``fn`` runs only while tracing on TensorFlow and JAX.
    ``reduce_retracing=True`` lets one TensorFlow trace serve several batch sizes.
    """
    return _for_backend(
        {
            "tensorflow": _tensorflow_compile,
            "jax": _jax_compile,
            "torch": _torch_compile,
        }
    )(fn, list(variables), reduce_retracing)


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
    if not is_tensorflow():
        return None
    tf = tensorflow()
    y, _, _ = tf.compat.v1.nn.fused_batch_norm(
        x, scale, offset, mean=mean, variance=variance, epsilon=epsilon, is_training=False
    )
    return y


def accelerator_available() -> bool:
    """True when the backend computes on a GPU or TPU rather than the CPU."""
    return _for_backend(
        {
            "tensorflow": _tensorflow_accelerator,
            "jax": _jax_accelerator,
            "torch": _torch_accelerator,
        }
    )()


def _for_backend(implementations: dict):
    name = backend_name()
    if name not in implementations:
        raise NotImplementedError(
            "keras_smalldata needs gradients and compiled functions here, which are "
            f"implemented for the {', '.join(sorted(implementations))} backends; the "
            f"running Keras backend is {name!r}. Set KERAS_BACKEND to one of them."
        )
    return implementations[name]


def _tensorflow_gradient(fn):
    tf = tensorflow()

    def gradient(source, *args):
        # Only `source` is watched: the model's variables are not differentiated.
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(source)
            target, aux = fn(source, *args)
            total = tf.reduce_sum(target)
        zeros = tf.UnconnectedGradients.ZERO
        return tape.gradient(total, source, unconnected_gradients=zeros), aux

    return gradient


def _jax_gradient(fn):
    import jax
    import jax.numpy as jnp

    def summed(source, *args):
        target, aux = fn(source, *args)
        return jnp.sum(target), aux

    return jax.grad(summed, has_aux=True)


def _torch_gradient(fn):
    import keras
    import torch

    def gradient(source, *args):
        with torch.enable_grad():
            source = source.detach().requires_grad_(True)
            target, aux = fn(source, *args)
            total = target.sum()
            grad = None
            if total.requires_grad:
                (grad,) = torch.autograd.grad(total, source, allow_unused=True)
        if grad is None:
            grad = torch.zeros_like(source)
        aux = keras.tree.map_structure(
            lambda t: t.detach() if isinstance(t, torch.Tensor) else t, aux
        )
        return grad, aux

    return gradient


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


_RETRACING_FILTER = _OwnRetracingFilter()


def _own_tf_function(fn, **kwargs):
    """``tf.function(fn, **kwargs)``, with TensorFlow's retracing warning about it filtered."""
    tf = tensorflow()
    logger = tf.get_logger()
    if _RETRACING_FILTER not in logger.filters:
        logger.addFilter(_RETRACING_FILTER)
    _OWN_FUNCTION_NAMES.add(f"<function {fn.__qualname__} at ")
    return tf.function(fn, autograph=False, **kwargs)


def _tensorflow_compile(fn, variables, reduce_retracing):
    # A tf.function reads the variables it closes over when it runs.
    return _own_tf_function(fn, reduce_retracing=reduce_retracing)


def _jax_compile(fn, variables, reduce_retracing):
    # A jitted function that closes over a variable keeps the value the variable
    # had when it was traced; passing the values in keeps it current.
    import jax
    import keras

    def stateless(values, *args):
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
            return fn(*args)

    jitted = jax.jit(stateless)

    def compiled(*args):
        return jitted([variable.value for variable in variables], *args)

    return compiled


def _torch_compile(fn, variables, reduce_retracing):
    # Eager PyTorch is fast enough on its own; autograd stays off except where
    # `gradient_function` turns it on.
    import torch

    def compiled(*args):
        with torch.no_grad():
            return fn(*args)

    return compiled


def _tensorflow_accelerator() -> bool:
    config = tensorflow().config
    return bool(
        config.list_logical_devices("GPU") or config.list_logical_devices("TPU")
    )


def _jax_accelerator() -> bool:
    import jax

    return jax.default_backend() != "cpu"


def _torch_accelerator() -> bool:
    import torch

    return torch.cuda.is_available()


def is_tf_dataset(obj) -> bool:
    """Returns True when ``obj`` is a ``tf.data.Dataset`` (without importing TF)."""
    module = type(obj).__module__ or ""
    if not module.startswith("tensorflow"):
        return False
    return isinstance(obj, tensorflow().data.Dataset)


def runs_in_tf_data(x) -> bool:
    """True for a TensorFlow tensor given to a layer while Keras runs another backend.

    That is what a layer sees inside ``tf.data`` (``dataset.map(layer)``) under
    the JAX or PyTorch backend: `keras.ops` cannot take such tensors, so the layer
    must compute with TensorFlow there (see `numpy_ops_for`).
    """
    if is_tensorflow():
        return False
    return (type(x).__module__ or "").startswith("tensorflow")


def in_tf_data_function() -> bool:
    """True while TensorFlow traces a ``tf.data`` function (``dataset.map(...)``).

    Under the TensorFlow backend a layer cannot tell a ``tf.data`` graph from
    a ``tf.function`` by its tensors. It matters for random draws: ``map``
    with ``num_parallel_calls`` runs the function concurrently, and a
    `keras.random.SeedGenerator` reads and then writes its state, so two
    batches can get the same draws (see `tf_data_uniform`). ``tf.data`` names
    its function graphs ``Dataset_<transformation>_<function>``.
    """
    if not is_tensorflow():
        return False
    graph = tensorflow().compat.v1.get_default_graph()
    while graph is not None:
        if (getattr(graph, "name", None) or "").startswith("Dataset_"):
            return True
        graph = getattr(graph, "outer_graph", None)
    return False


def numpy_ops_for(x):
    """A NumPy-like op namespace that accepts ``x``.

    `keras.ops` for tensors of the running backend; `tf.experimental.numpy`
    for TensorFlow tensors inside ``tf.data`` under JAX or PyTorch.
    """
    if runs_in_tf_data(x):
        return tensorflow().experimental.numpy
    import keras

    return keras.ops


def keras_ops_for(x):
    """`keras.ops`, or for the TensorFlow tensors of `runs_in_tf_data` the same
    functions done by TensorFlow (`tf.experimental.numpy`, with Keras' ``cast``,
    ``shape`` and ``arange``, which also take sizes known only as tensors)."""
    if runs_in_tf_data(x):
        return _TensorFlowOps()
    import keras

    return keras.ops


class _TensorFlowOps:
    def __getattr__(self, name):
        return getattr(tensorflow().experimental.numpy, name)

    @staticmethod
    def cast(x, dtype):
        return tensorflow().cast(x, dtype)

    @staticmethod
    def shape(x):
        return tensorflow().shape(x)

    @staticmethod
    def arange(stop, dtype=None):
        return tensorflow().range(stop, dtype=dtype)


def xla_function(fn, tensorflow_tensors: bool = False):
    """Compiles a pure ``fn(*tensors)`` with XLA where the backend has a compiler.

    ``tf.function(jit_compile=True)`` on TensorFlow, and for the TensorFlow
    tensors a layer gets inside ``tf.data`` under another backend
    (``tensorflow_tensors=True``); ``jax.jit`` on JAX; ``fn`` itself on PyTorch
    (eager). One TensorFlow trace serves every batch size; XLA compiles once
    per input shape.
    """
    if tensorflow_tensors or is_tensorflow():
        return _own_tf_function(fn, jit_compile=True, reduce_retracing=True)
    return _for_backend({"jax": _jax_xla, "torch": lambda fn: fn})(fn)


def _jax_xla(fn):
    import jax

    return jax.jit(fn)


def without_autograph(fn):
    """``fn`` marked for ``tf.data`` to trace as written, not through AutoGraph.

    ``dataset.map`` converts the Python code it calls with AutoGraph; code that
    only branches on Python values needs none of it (and the conversion warns
    about library functions whose source it cannot read).
    """
    return tensorflow().autograph.experimental.do_not_convert(fn)


_TF_DATA_GENERATORS = weakref.WeakKeyDictionary()


def tf_data_uniform(owner, shape, seed: int | None = None):
    """Float32 draws from U(0, 1) inside ``tf.data``, under every backend.

    Under JAX and PyTorch a layer's `keras.random.SeedGenerator` keeps its
    state in the running backend, which a ``tf.data`` graph cannot advance;
    under TensorFlow it can, but not atomically (parallel ``map`` calls can
    read the same state). Here the state is a
    ``tf.random.Generator`` made once per ``owner`` (outside any graph, from
    ``seed``); each call advances it atomically, so parallel ``map`` calls never
    repeat a draw, and a new owner with the same seed repeats the sequence.
    """
    tf = tensorflow()
    generator = _TF_DATA_GENERATORS.get(owner)
    if generator is None:
        with tf.init_scope():
            if seed is None:
                generator = tf.random.Generator.from_non_deterministic_state()
            else:
                generator = tf.random.Generator.from_seed(seed)
        _TF_DATA_GENERATORS[owner] = generator
    return generator.uniform(shape, dtype=tf.float32)


def model_scope(model):
    """The context in which ``model``'s own variables are created.

    On TensorFlow that is the scope of the `tf.distribute` strategy the model
    was built under (``model.distribute_strategy``): compiling a model built
    under ``MirroredStrategy`` outside its scope fails with "Mixing different
    tf.distribute.Strategy objects". JAX (``keras.distribution``) and PyTorch
    need no scope.
    """
    if is_tensorflow():
        return model.distribute_strategy.scope()
    import contextlib

    return contextlib.nullcontext()


def in_model_scope(model, variable) -> bool:
    """True when ``variable`` was created in ``model``'s scope (see `model_scope`).

    Only TensorFlow has such scopes: a variable made outside the model's
    `tf.distribute` strategy (an optimizer created outside
    ``strategy.scope()``) cannot be used with it. Always True elsewhere.
    """
    if is_tensorflow():
        extended = model.distribute_strategy.extended
        return extended.variable_created_in_scope(variable.value)
    return True
