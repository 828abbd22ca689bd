"""What the library does differently on the PyTorch backend (see `keras_smalldata._backend`)."""

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

    See the TensorFlow version (`keras_smalldata._backend.tensorflow_backend`);
    ``aux`` comes back detached from autograd.
    """
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


def compile_function(fn, variables=(), reduce_retracing: bool = False):
    """``fn`` run eagerly without autograd (eager PyTorch is fast enough on its own)."""
    # Autograd stays off except where `gradient_function` turns it on.
    import torch

    def compiled(*args):
        with torch.no_grad():
            return fn(*args)

    return compiled


def xla_function(fn):
    """``fn`` itself: PyTorch runs eagerly."""
    return fn


def fused_batch_normalization(x, mean, variance, offset, scale, epsilon: float):
    """None: Keras' own batch normalisation runs."""
    return None


def accelerator_available() -> bool:
    """True when PyTorch has a CUDA device."""
    import torch

    return torch.cuda.is_available()



def replica_count(model) -> int:
    """1: one device."""
    return 1


def shard_batch(images):
    """``images`` as they are."""
    return images


def in_tf_data_graph() -> bool:
    """False: inside ``tf.data`` a layer gets TensorFlow tensors, not PyTorch tensors."""
    return False
