"""extract_features on TensorFlow, JAX and PyTorch: same features, own cache entries, scaling out.

The suite runs under each backend (KERAS_BACKEND); the tests here compare
with references computed in NumPy, so that equal results on every backend
follow from each run. Entries written under one backend and scaling out on
several devices need another process, started with its own environment.
"""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_smalldata.features import extract_features

ROOT = Path(__file__).resolve().parents[2]
BACKEND = keras.backend.backend()
_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype="float32")


def _conv_base(size):
    """A tiny conv base with fixed weights: Conv2D(4, 3) + ReLU, global average."""
    inputs = keras.Input((size, size, 3))
    conv = keras.layers.Conv2D(4, 3, activation="relu", name="conv")
    outputs = keras.layers.GlobalAveragePooling2D()(conv(inputs))
    base = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    conv.set_weights([rng.normal(0, 0.05, (3, 3, 3, 4)).astype("float32"), rng.normal(0, 1, (4,)).astype("float32")])
    return base, conv.get_weights()


def _reference(x, kernel, bias):
    """The conv base in NumPy: valid 3x3 convolution, ReLU, mean over positions."""
    n, h, w, _ = x.shape
    patches = np.stack(
        [x[:, i : i + h - 2, j : j + w - 2, :] for i in range(3) for j in range(3)], axis=3
    )  # (n, h-2, w-2, 9, 3)
    conv = np.einsum("nyxpc,pco->nyxo", patches.astype("float64"), kernel.reshape(9, 3, 4)) + bias
    return np.maximum(conv, 0).mean(axis=(1, 2))


def test_features_equal_a_numpy_reference(numbered_folder, tmp_path):
    base, (kernel, bias) = _conv_base(12)
    dataset = keras.utils.image_dataset_from_directory(
        numbered_folder, image_size=(12, 12), batch_size=8, shuffle=False, verbose=False
    )
    x = np.concatenate([images.numpy() for images, _ in dataset])
    expected = _reference(x, kernel, bias)
    for cache_dir in (None, tmp_path, tmp_path):  # computed, written, read back
        result = extract_features(base, dataset, cache_dir=cache_dir, verbose=0)
        np.testing.assert_allclose(result.features, expected, rtol=1e-4, atol=1e-4)
    assert result.from_cache


def test_preprocess_input_inside_the_model_works_on_every_backend(numbered_folder):
    # The documented recipe: Keras' preprocess_input on the model's input, so
    # that it runs in the backend (mapping it over the tf.data dataset would
    # run backend ops on TensorFlow tensors, which fails on JAX and PyTorch).
    base, (kernel, bias) = _conv_base(12)
    inputs = keras.Input((12, 12, 3))
    model = keras.Model(inputs, base(keras.applications.vgg16.preprocess_input(inputs)))
    dataset = keras.utils.image_dataset_from_directory(
        numbered_folder, image_size=(12, 12), batch_size=16, shuffle=False, verbose=False
    )
    result = extract_features(model, dataset, verbose=0)
    x = np.concatenate([images.numpy() for images, _ in dataset])
    expected = _reference(x[..., ::-1] - _MEAN_BGR, kernel, bias)  # RGB->BGR, mean subtracted
    np.testing.assert_allclose(result.features, expected, rtol=1e-4, atol=1e-4)
    assert len(result) == 40 and result.class_names == ["a", "b"]


def _run(code: str, env: dict, timeout: int = 300) -> dict:
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env}
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=timeout,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


_EXTRACT_IN_ANOTHER_BACKEND = """
    import json, sys
    import numpy as np
    from keras_smalldata.features import extract_features
    from tests.features.test_backends import _conv_base
    base, _ = _conv_base(12)
    x = np.random.default_rng(3).uniform(0, 255, (9, 12, 12, 3)).astype("float32")
    result = extract_features(base, (x, np.arange(9)), batch_size=4, cache_dir=sys.argv[1], verbose=0)
    print(json.dumps({"from_cache": result.from_cache, "features": np.asarray(result.features).tolist()}))
"""


# Another installed backend: the default install has TensorFlow only, CI adds the others.
_OTHER_BACKEND = next(
    (b for b in ("jax", "torch", "tensorflow") if b != BACKEND and importlib.util.find_spec(b)),
    None,
)


@pytest.mark.skipif(_OTHER_BACKEND is None, reason="needs a second Keras backend installed")
def test_an_entry_is_not_reused_under_another_backend(tmp_path):
    base, _ = _conv_base(12)
    x = np.random.default_rng(3).uniform(0, 255, (9, 12, 12, 3)).astype("float32")
    here = extract_features(base, (x, np.arange(9)), batch_size=4, cache_dir=tmp_path, verbose=0)
    code = _EXTRACT_IN_ANOTHER_BACKEND.replace("sys.argv[1]", repr(str(tmp_path)))
    there = _run(code, {"KERAS_BACKEND": _OTHER_BACKEND})
    assert not there["from_cache"]  # the backend is part of the key
    np.testing.assert_allclose(np.array(there["features"]), here.features, rtol=1e-5, atol=1e-5)
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 2


_MIRRORED = """
    import json
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import numpy as np
    from keras_smalldata.features import extract_features
    from tests.features.test_backends import _conv_base
    x = np.random.default_rng(1).uniform(0, 255, (9, 12, 12, 3)).astype("float32")
    y = np.arange(9)
    single, _ = _conv_base(12)
    expected = extract_features(single, (x, y), batch_size=4, verbose=0).features
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        mirrored, _ = _conv_base(12)
    # Batches of 4, 4 and 1: two rows per replica, and a last row on one device.
    arrays = extract_features(mirrored, (x, y), batch_size=4, verbose=0)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(9).batch(4)
    with strategy.scope():
        in_scope = extract_features(mirrored, dataset, verbose=0)
    order = in_scope.labels
    print(json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "arrays": float(np.abs(arrays.features - expected).max()),
        "dataset": float(np.abs(in_scope.features - expected[order]).max()),
        "labels": sorted(order.tolist()),
    }))
"""


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.distribute is TensorFlow's")
def test_mirrored_strategy_on_two_cpu_devices_gives_the_same_features():
    result = _run(_MIRRORED, {"KERAS_BACKEND": "tensorflow"})
    assert result["replicas"] == 2
    assert result["arrays"] < 1e-4 and result["dataset"] < 1e-4
    assert result["labels"] == list(range(9))


_DATA_PARALLEL = """
    import json
    import jax
    import keras
    import numpy as np
    from keras_smalldata.features import extract_features
    from tests.features.test_backends import _conv_base
    x = np.random.default_rng(1).uniform(0, 255, (9, 12, 12, 3)).astype("float32")
    y = np.arange(9)
    single, _ = _conv_base(12)
    expected = extract_features(single, (x, y), batch_size=4, verbose=0).features
    keras.distribution.set_distribution(keras.distribution.DataParallel())
    parallel, _ = _conv_base(12)
    # Batches of 4, 4 (sharded, two rows per device) and 1 (replicated).
    result = extract_features(parallel, (x, y), batch_size=4, verbose=0)
    from keras_smalldata._backend import shard_batch
    print(json.dumps({
        "devices": len(jax.devices()),
        "batch_of_4": str(shard_batch(x[:4]).sharding.spec),
        "batch_of_1": type(shard_batch(x[:1])).__name__,
        "difference": float(np.abs(result.features - expected).max()),
        "labels": result.labels.tolist(),
    }))
"""


@pytest.mark.skipif(BACKEND != "jax", reason="keras.distribution.DataParallel runs on JAX")
def test_data_parallel_on_two_cpu_devices_gives_the_same_features():
    env = {"KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    result = _run(_DATA_PARALLEL, env)
    assert result["devices"] == 2
    assert result["batch_of_4"].split("(", 1)[1].startswith("'batch'")  # split along the batch
    assert result["batch_of_1"] == "ndarray"  # left whole
    assert result["difference"] < 1e-4
    assert result["labels"] == list(range(9))
