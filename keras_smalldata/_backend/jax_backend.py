"""What the library does differently on the JAX backend (see `keras_smalldata._backend`)."""

from __future__ import annotations

import keras

from keras_smalldata._backend.interface import FUNCTIONS
from keras_smalldata._backend.single_device import (  # noqa: F401 (re-exported)
    in_model_scope,
    model_scope,
)

# The interface they all share, re-exported by keras_smalldata._backend.
__all__ = list(FUNCTIONS)


def gradient_function(fn):
    """``g(source, *args) -> (gradient, aux)`` for ``fn(source, *args) -> (target, aux)``.

    See the TensorFlow version (`keras_smalldata._backend.tensorflow_backend`).
    """
    import jax
    import jax.numpy as jnp

    def summed(source, *args):
        target, aux = fn(source, *args)
        return jnp.sum(target), aux

    return jax.grad(summed, has_aux=True)


def compile_function(fn, variables=(), reduce_retracing: bool = False):
    """``jax.jit`` of ``fn``, given the current values of ``variables`` at every call."""
    # A jitted function that closes over a variable keeps the value the variable
    # had when it was traced; passing the values in keeps it current.
    import jax

    variables = list(variables)

    def stateless(values, *args):
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
            return fn(*args)

    jitted = jax.jit(stateless)

    def compiled(*args):
        return jitted([variable.value for variable in variables], *args)

    return compiled


def xla_function(fn):
    """``jax.jit(fn)`` for a pure function of tensors."""
    import jax

    return jax.jit(fn)


def fused_batch_normalization(x, mean, variance, offset, scale, epsilon: float):
    """None: XLA fuses Keras' own batch normalisation."""
    return None


def accelerator_available() -> bool:
    """True when JAX computes on a GPU or TPU rather than the CPU."""
    import jax

    return jax.default_backend() != "cpu"



def replica_count(model) -> int:
    """1: a `keras.distribution` splits the batch itself (see `shard_batch`)."""
    return 1


def shard_batch(images):
    """Shards a batch along the batch axis under a `keras.distribution`, when it divides.

    The batch goes whole (replicated) when no distribution is set, when it
    has no batch axis to split along, or when its size does not divide among
    the devices (the last, shorter batch).
    """
    distribution = keras.distribution.distribution()
    if distribution is None:
        return images
    mesh = distribution.device_mesh
    name = getattr(distribution, "batch_dim_name", None)
    devices = mesh.shape[list(mesh.axis_names).index(name)] if name in mesh.axis_names else 1
    if devices <= 1 or len(images) % devices:
        return images
    layout = distribution.get_data_layout(images.shape)
    return keras.distribution.distribute_tensor(images, layout)


def in_tf_data_graph() -> bool:
    """False: inside ``tf.data`` a layer gets TensorFlow tensors, not JAX arrays."""
    return False
