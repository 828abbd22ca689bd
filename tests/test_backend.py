"""One module per Keras backend, chosen once at import; no process-wide side effect."""

import importlib
import os
import subprocess
import sys

import keras

from keras_smalldata import _backend

MODULES = ("tensorflow_backend", "jax_backend", "torch_backend", "unsupported_backend")


def test_every_backend_module_exposes_the_same_functions():
    names = {
        module: sorted(importlib.import_module(f"keras_smalldata._backend.{module}").__all__)
        for module in MODULES
    }
    assert len({tuple(n) for n in names.values()}) == 1, names


def test_the_running_backends_module_is_the_one_re_exported():
    module = importlib.import_module(f"keras_smalldata._backend.{keras.backend.backend()}_backend")
    for name in module.__all__:
        assert getattr(_backend, name) is getattr(module, name), name


_USE_THE_LIBRARY = """
import os
import keras
import numpy as np
import tensorflow as tf
before = (os.environ.get("TF_CPP_MIN_LOG_LEVEL"), list(tf.get_logger().filters))
import keras_smalldata
from keras_smalldata.augment import RandomAffine
layer = RandomAffine(rotation_range=30, seed=0)
x = np.zeros((4, 8, 8, 3), "float32")
layer(x, training=True)
list(tf.data.Dataset.from_tensor_slices(x).batch(2).map(lambda t: layer(t, training=True)))
keras_smalldata.extract_features(keras.Sequential([keras.layers.Flatten()]), x, verbose=0)
after = (os.environ.get("TF_CPP_MIN_LOG_LEVEL"), list(tf.get_logger().filters))
print("SAME", before == after)
"""


def test_using_the_library_leaves_no_process_wide_state():
    """No environment variable set, no filter left on TensorFlow's logger."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [sys.executable, "-c", _USE_THE_LIBRARY], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "SAME True" in result.stdout
