"""The one place in `viz` that records operations for gradients.

Gradients of a score with respect to an intermediate activation or to the
input picture are what Grad-CAM and gradient ascent need. Keras 3 has no
backend-neutral way to take the gradient with respect to a tensor computed in
the middle of a forward pass, so that part sits behind `gradient_recorder`,
which on TensorFlow is a thin wrapper over `tf.GradientTape`. Supporting JAX or
torch later means adding a recorder here, nothing else in the package changes.
"""

from __future__ import annotations

from keras_smalldata import _backend


class _TensorFlowRecorder:
    """Records the operations run inside its ``with`` block (a `tf.GradientTape`)."""

    def __init__(self):
        tf = _backend.tensorflow()
        # Variables are not watched automatically: a frozen base has none, and
        # what we differentiate with respect to is always watched explicitly.
        self._tape = tf.GradientTape(watch_accessed_variables=False)

    def __enter__(self):
        self._tape.__enter__()
        return self

    def __exit__(self, *exc_info):
        return self._tape.__exit__(*exc_info)

    def watch(self, tensor):
        """Marks ``tensor`` (a tensor or a nested structure of them) as a source."""
        self._tape.watch(tensor)
        return tensor

    def gradient(self, target, sources):
        """Gradient of the sum of ``target`` with respect to each of ``sources``.

        A source the target does not depend on gets zeros, never None.
        """
        tf = _backend.tensorflow()
        return self._tape.gradient(
            target, sources, unconnected_gradients=tf.UnconnectedGradients.ZERO
        )


def gradient_recorder():
    """Returns a context manager that records operations for gradients.

    Usage::

        with gradient_recorder() as recorder:
            recorder.watch(x)
            y = f(x)
        dy_dx = recorder.gradient(y, x)

    Raises:
        NotImplementedError: When the Keras backend is not TensorFlow.
    """
    if _backend.is_tensorflow():
        return _TensorFlowRecorder()
    raise NotImplementedError(
        "keras_smalldata.viz needs gradients of intermediate activations, which "
        "are implemented for the TensorFlow backend only; the running Keras "
        f"backend is {_backend.backend_name()!r}. Set KERAS_BACKEND=tensorflow."
    )


def accelerator_available() -> bool:
    """True when the backend sees a GPU or TPU (TensorFlow only; False otherwise)."""
    if not _backend.is_tensorflow():
        return False
    tf = _backend.tensorflow()
    return bool(
        tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU")
    )


def compile_function(fn, reduce_retracing: bool = False):
    """Compiles a forward/backward step into a graph (`tf.function`) on TensorFlow.

    Eager execution of a conv net's forward and backward passes is several
    times slower than the same ops run as a graph (measured on CPU: 57 ms vs
    5 ms for one 64 px picture through two convolutions), so the repeated
    steps of `viz` run compiled. The Python body runs only while tracing:
    layer hooks installed inside it are active exactly then. Other backends
    get ``fn`` back unchanged. ``reduce_retracing=True`` lets one trace serve
    several batch sizes (its shapes may then hold None).
    """
    if _backend.is_tensorflow():
        tf = _backend.tensorflow()
        return tf.function(fn, autograph=False, reduce_retracing=reduce_retracing)
    return fn


class FunctionCache:
    """A small least-recently-used cache of compiled functions, per model.

    Tracing costs about as much as many steps, so a loop of calls on the same
    model and layer (e.g. one `filter_pattern` per filter) reuses the traced
    function. Entries hold a weak reference to their model: a model that is
    gone (and whose id was reused) never matches.
    """

    def __init__(self, size: int = 8):
        import collections

        self._size = size
        self._entries = collections.OrderedDict()

    def get(self, model, key, build):
        import weakref

        full_key = (id(model),) + tuple(key)
        entry = self._entries.get(full_key)
        if entry is not None and entry[0]() is model:
            self._entries.move_to_end(full_key)
            return entry[1]
        value = build()
        self._entries[full_key] = (weakref.ref(model), value)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return value

    def clear(self):
        self._entries.clear()
