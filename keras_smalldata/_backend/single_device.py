"""What backends without distribution scopes share (JAX, PyTorch and any other)."""

from __future__ import annotations

import contextlib


def model_scope(model) -> contextlib.AbstractContextManager:
    """No scope: only TensorFlow's `tf.distribute` strategies have one."""
    return contextlib.nullcontext()


def in_model_scope(model, variable) -> bool:
    """Always True (only TensorFlow has distribution scopes)."""
    return True
