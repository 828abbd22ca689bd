"""Compiled forward (and backward) passes of a model, cached per model.

Eager execution of a conv net's forward and backward passes is several times
slower than the same ops compiled (on TensorFlow, measured on CPU: 57 ms vs
5 ms for one 64 px picture through two convolutions), so the repeated passes
of `viz` run compiled (`keras_smalldata._backend.compile_function`: a
`tf.function`, a `jax.jit` that is given the model's current weights at every
call, or eager PyTorch). Tracing costs about as much as many steps, so a loop
of calls on the same model and layer (e.g. one `filter_pattern` per filter)
reuses the traced function from a small cache.
"""

from __future__ import annotations

import collections
import weakref

from keras_smalldata import _backend


def compile_for(model, fn, reduce_retracing: bool = False):
    """Compiles ``fn``, a pass through ``model``; every call sees the model's current weights."""
    return _backend.compile_function(fn, model.variables, reduce_retracing)


class FunctionCache:
    """A small least-recently-used cache of values built for a model (compiled functions, facts).

    Entries hold a weak reference to their model: a model that is gone (and
    whose id was reused) never matches.
    """

    def __init__(self, size: int = 8):
        self._size = size
        self._entries = collections.OrderedDict()

    def get(self, model, key, build):
        """The value cached for ``(model, *key)``, built with ``build()`` when missing."""
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
