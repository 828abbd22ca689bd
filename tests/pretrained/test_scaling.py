"""Scaling out: a model with augmentation and a PretrainedBase on two devices, as on one.

Two logical CPU devices must be set up before the framework starts, so each
check runs in a fresh process: TensorFlow's `tf.distribute.MirroredStrategy`
under the TensorFlow backend, `keras.distribution.DataParallel` under JAX.
Each test runs under its own backend only (CI runs the suite once per backend).
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

# Shared by both scripts: 16 pictures, blocks 1-2 of VGG16 with block 2
# trainable, the seeds' augmentation preset, a small head.
_COMMON = r"""
import json
import keras
import numpy as np
from keras_smalldata.augment import augmentation_preset
from keras_smalldata.pretrained import PretrainedBase, add_classifier_head

rng = np.random.default_rng(0)
x = rng.uniform(0, 255, (16, 32, 32, 3)).astype("float32")
y = (np.arange(16) % 2).astype("float32")


def build(augment_in_model):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    h = augmentation_preset("image_data_generator", seed=1)(inputs) if augment_in_model else inputs
    base = PretrainedBase("vgg16", input_shape=(32, 32, 3), weights=None, output_layer="block2")
    model = keras.Model(inputs, add_classifier_head(base(h), hidden_units=8, dropout=0.0))
    base.freeze_until("block2_conv1")
    model.compile(keras.optimizers.SGD(1e-5), "binary_crossentropy")
    return base, model


def frozen_kept(base, fit):
    before = [w.copy() for w in base.get_layer("block1_conv1").get_weights()]
    fit()
    after = base.get_layer("block1_conv1").get_weights()
    return all(np.array_equal(a, b) for a, b in zip(before, after))


def trained_weights(model):
    return [keras.ops.convert_to_numpy(v).tolist() for v in model.trainable_weights]


def report(**results):
    print("RESULT " + json.dumps(results))
"""

_TENSORFLOW = r"""
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
""" + _COMMON + r"""
def dataset(augment_in_data):
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    if augment_in_data:  # one draw per picture of the global batch, same seed each run
        augment = augmentation_preset("image_data_generator", seed=1)
        ds = ds.map(lambda a, b: (augment(a), b))
    return ds


def run(strategy, augment_in_model, recompile=False):
    with strategy.scope():
        base, model = build(augment_in_model)
    results = dict(replicas=model.distribute_strategy.num_replicas_in_sync,
                   evaluation=model.evaluate(x, y, batch_size=8, verbose=0))
    results["losses"] = model.fit(dataset(not augment_in_model), epochs=1, verbose=0).history["loss"]
    results["weights"] = trained_weights(model)
    if recompile:  # outside the strategy's scope, with an optimizer made outside it too
        base.freeze(recompile=model, optimizer=keras.optimizers.SGD(1e-5))
        results["frozen_kept"] = frozen_kept(
            base, lambda: model.fit(dataset(not augment_in_model), epochs=1, verbose=0))
    return results


one = tf.distribute.OneDeviceStrategy("/cpu:0")
two = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
report(one=run(one, False), two=run(two, False, recompile=True), two_in_model=run(two, True))
"""

_JAX = _COMMON + r"""
import jax


def run(distribution, recompile=False):
    keras.distribution.set_distribution(distribution)
    base, model = build(augment_in_model=True)
    results = dict(devices=len(base.get_layer("block2_conv1").kernel.value.sharding.device_set))
    results["losses"] = model.fit(x, y, batch_size=8, shuffle=False, verbose=0).history["loss"]
    results["weights"] = trained_weights(model)
    if recompile:
        base.freeze(recompile=model, optimizer=keras.optimizers.SGD(1e-5))
        results["frozen_kept"] = frozen_kept(
            base, lambda: model.fit(x, y, batch_size=8, shuffle=False, verbose=0))
    return results


report(one=run(None),
       two=run(keras.distribution.DataParallel(devices=jax.devices()), recompile=True))
"""


def _run(script, **env):
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env}
    result = subprocess.run([sys.executable, "-c", script], env=environment,
                            capture_output=True, text=True, timeout=900)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, result.stdout[-2000:] + result.stderr[-4000:]
    return json.loads(lines[0][len("RESULT "):])


def _assert_same_training(one, two):
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-5)
    for a, b in zip(one["weights"], two["weights"]):
        np.testing.assert_allclose(np.array(b), np.array(a), rtol=1e-5, atol=1e-7)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="MirroredStrategy is TensorFlow's")
def test_mirrored_strategy_on_two_devices_trains_as_one_device():
    results = _run(_TENSORFLOW, KERAS_BACKEND="tensorflow")
    one, two, in_model = results["one"], results["two"], results["two_in_model"]
    assert (one["replicas"], two["replicas"], in_model["replicas"]) == (1, 2, 2)
    # Augmentation in the tf.data pipeline draws once for the global batch:
    # two replicas train exactly as one device.
    _assert_same_training(one, two)
    # In the model it runs too, identity at inference (evaluate) as on one device.
    assert in_model["evaluation"] == pytest.approx(one["evaluation"], rel=1e-5)
    assert np.isfinite(in_model["losses"]).all()
    # Recompiling from outside the strategy's scope works, and freezing holds.
    assert two["frozen_kept"]


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="keras.distribution runs on JAX")
def test_jax_data_parallel_on_two_devices_trains_as_one_device():
    results = _run(_JAX, KERAS_BACKEND="jax",
                   XLA_FLAGS="--xla_force_host_platform_device_count=2")
    one, two = results["one"], results["two"]
    assert (one["devices"], two["devices"]) == (1, 2)
    # JAX computes the global batch, augmentation draws included: same results.
    _assert_same_training(one, two)
    assert two["frozen_kept"]
