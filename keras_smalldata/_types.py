"""Type aliases of the public annotations.

Keras 3 runs on TensorFlow, JAX or PyTorch, and its tensors are those of the active
backend, which this package cannot name without importing all three. These aliases
say in an annotation what a parameter accepts; to a type checker they are ``Any``.
"""

from __future__ import annotations

from typing import Any, TypeAlias

# A tensor of the active backend, a symbolic Keras tensor, or a NumPy array.
Tensor: TypeAlias = Any
# Values ``numpy.asarray`` or ``keras.ops.convert_to_tensor`` accept: NumPy arrays,
# backend tensors, nested lists of numbers.
ArrayLike: TypeAlias = Any
# What ``Model.fit`` / ``Model.predict`` accept as data: arrays (or a tuple of
# images and labels), a ``tf.data.Dataset``, a ``keras.utils.PyDataset``, a generator.
Data: TypeAlias = Any
# A shape with unknown dimensions as None, e.g. ``(None, 150, 150, 3)``.
Shape: TypeAlias = tuple[int | None, ...]
