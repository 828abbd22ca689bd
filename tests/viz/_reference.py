"""Reference computations for the viz tests, written independently of the library.

The gradients here differentiate a plain function of a leaf tensor with the
backend's own autodiff, with no recording hooks, probes or compilation: what
the library does differently is what the tests compare against.
"""

import keras
import numpy as np


def gradient(fn, x) -> np.ndarray:
    """d sum(fn(x)) / dx for a NumPy array ``x``, with the running backend's autodiff."""
    backend = keras.backend.backend()
    x = np.asarray(x, dtype="float32")
    if backend == "tensorflow":
        import tensorflow as tf

        tensor = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(tensor)
            total = tf.reduce_sum(fn(tensor))
        return tape.gradient(total, tensor).numpy()
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        return np.asarray(jax.grad(lambda t: jnp.sum(fn(t)))(jnp.asarray(x)))
    import torch

    tensor = keras.ops.convert_to_tensor(x).detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(fn(tensor).sum(), tensor)
    return grad.detach().cpu().numpy()


def numpy(x) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(x), dtype="float64")


def grad_cam_reference(feature_fn, score_fn, images, classes) -> np.ndarray:
    """An independent Grad-CAM: A = feature_fn(x); score = score_fn(A)[i, c_i]."""
    features = numpy(feature_fn(keras.ops.convert_to_tensor(images)))

    def chosen(a):
        scores = score_fn(a)
        one_hot = keras.ops.one_hot(classes, scores.shape[1], dtype=scores.dtype)
        return keras.ops.sum(scores * one_hot, axis=1)

    grads = gradient(chosen, features)
    weights = grads.mean(axis=(1, 2))
    return np.maximum(np.einsum("nhwk,nk->nhw", features, weights), 0.0)


def bilinear_resize(maps: np.ndarray, size: int) -> np.ndarray:
    """Upsamples (batch, h, w) maps to (batch, size, size), half-pixel centres, edges clamped."""

    def weights(source: int):
        position = (np.arange(size) + 0.5) * source / size - 0.5
        position = np.clip(position, 0, source - 1)
        low = np.floor(position).astype(int)
        high = np.minimum(low + 1, source - 1)
        return low, high, position - low

    r0, r1, rw = weights(maps.shape[1])
    c0, c1, cw = weights(maps.shape[2])
    rows = maps[:, r0] * (1 - rw)[None, :, None] + maps[:, r1] * rw[None, :, None]
    return rows[:, :, c0] * (1 - cw)[None, None, :] + rows[:, :, c1] * cw[None, None, :]
