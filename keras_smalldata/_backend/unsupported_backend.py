"""The functions of `keras_smalldata._backend` on a Keras backend the library does not support.

Only what needs gradients or a compiler raises (naming the backends that
work); the rest behaves as on PyTorch.
"""

from __future__ import annotations

import keras

from keras_smalldata._backend.interface import FUNCTIONS
from keras_smalldata._backend.single_device import (  # noqa: F401 (re-exported)
    in_model_scope,
    model_scope,
)
from keras_smalldata._backend.torch_backend import (  # noqa: F401 (re-exported)
    fused_batch_normalization,
    in_tf_data_graph,
    replica_count,
    shard_batch,
)

# The interface they all share, re-exported by keras_smalldata._backend.
__all__ = list(FUNCTIONS)


def _unsupported(*args, **kwargs):
    raise NotImplementedError(
        "keras_smalldata needs gradients and compiled functions here, which are "
        "implemented for the jax, tensorflow and torch backends; the running Keras "
        f"backend is {keras.backend.backend()!r}. Set KERAS_BACKEND to one of them."
    )


gradient_function = compile_function = xla_function = accelerator_available = _unsupported
