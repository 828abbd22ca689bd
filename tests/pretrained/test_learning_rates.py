"""DiscriminativeOptimizer: actual update sizes per group, groups, layer decay, saving."""

import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_smalldata.pretrained import PretrainedBase, add_classifier_head
from keras_smalldata.pretrained.freezing import weight_layers
from keras_smalldata.pretrained.learning_rates import (
    DiscriminativeOptimizer,
    block_groups,
)

X = np.random.default_rng(0).normal(size=(12, 4)).astype("float32")
Y = np.random.default_rng(1).normal(size=(12, 2)).astype("float32")


def two_heads(seed=0):
    """Two Dense layers on the same input, each with its own loss: their steps never mix."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4,))
    a = keras.layers.Dense(2, name="a")(inputs)
    b = keras.layers.Dense(2, name="b")(inputs)
    return keras.Model(inputs, [a, b])


def train(model, optimizer, steps=3, run_eagerly=False):
    model.compile(optimizer, ["mse", "mse"], run_eagerly=run_eagerly)
    model.fit(X[: 4 * steps], (Y[: 4 * steps], Y[: 4 * steps]), batch_size=4, epochs=1,
              shuffle=False, verbose=0)
    return {name: [np.array(w) for w in model.get_layer(name).get_weights()] for name in "ab"}


# Momentum, Adam's moments, decoupled weight decay, RMSprop, sign steps, clipping:
# the PyTorch backend runs the first four with its fused implementations.
OPTIMIZERS = {
    "sgd_nesterov_momentum": lambda lr: keras.optimizers.SGD(lr, momentum=0.9, nesterov=True),
    "adam": lambda lr: keras.optimizers.Adam(lr),
    "adamw": lambda lr: keras.optimizers.AdamW(lr, weight_decay=0.5),
    "rmsprop_momentum_centered": lambda lr: keras.optimizers.RMSprop(
        lr, momentum=0.5, centered=True),
    "lion_clipnorm": lambda lr: keras.optimizers.Lion(lr, clipnorm=0.1),
}


@pytest.mark.parametrize("kind", list(OPTIMIZERS))
def test_each_group_moves_as_with_a_plain_optimizer_at_its_own_rate(kind):
    make = OPTIMIZERS[kind]
    rate, multiplier = 0.1, 0.25
    model = two_heads()
    initial = {name: [np.array(w) for w in model.get_layer(name).get_weights()] for name in "ab"}
    grouped = train(model, DiscriminativeOptimizer(make(rate), model,
                                                   multipliers={"a": multiplier}))
    slow = train(two_heads(), make(rate * multiplier), run_eagerly=True)
    fast = train(two_heads(), make(rate), run_eagerly=True)
    for got, want in zip(grouped["a"], slow["a"]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    for got, want in zip(grouped["b"], fast["b"]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # The slow group really moved, and not as the fast one would have.
    step = np.abs(grouped["a"][0] - initial["a"][0]).max()
    assert step > 1e-3
    assert np.abs(fast["a"][0] - grouped["a"][0]).max() > 0.5 * step


def test_one_sgd_step_is_the_closed_form_update():
    model = two_heads()
    (wa, ba), (wb, bb) = (model.get_layer(n).get_weights() for n in "ab")
    rates = {"a": 0.3, "b": 0.05}
    optimizer = DiscriminativeOptimizer(
        keras.optimizers.SGD(0.1), model, learning_rates=rates)
    got = train(model, optimizer, steps=1)
    x, y = X[:4], Y[:4]
    for name, w, b in (("a", wa, ba), ("b", wb, bb)):
        error = x @ w + b - y
        # d/dw mean((xw + b - y)^2) over the batch and both output units.
        grad_w = 2 * x.T @ error / error.size
        grad_b = 2 * error.sum(axis=0) / error.size
        np.testing.assert_allclose(got[name][0], w - rates[name] * grad_w, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(got[name][1], b - rates[name] * grad_b, rtol=1e-5, atol=1e-7)


def test_multiplier_zero_keeps_a_group_exactly_and_schedules_scale_every_group():
    model = two_heads()
    before = [np.array(w) for w in model.get_layer("a").get_weights()]
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
    got = train(model, DiscriminativeOptimizer(keras.optimizers.SGD(schedule), model,
                                               multipliers={"a": 0.0}))
    assert all(np.array_equal(g, w) for g, w in zip(got["a"], before))
    reference = train(two_heads(), keras.optimizers.SGD(schedule), run_eagerly=True)
    np.testing.assert_allclose(got["b"][0], reference["b"][0], rtol=1e-6)


def test_learning_rate_is_the_wrapped_one_for_callbacks():
    model = two_heads()
    inner = keras.optimizers.Adam(0.01)
    optimizer = DiscriminativeOptimizer(inner, model, multipliers={"a": 0.5})
    optimizer.learning_rate = 0.002  # what ReduceLROnPlateau does
    assert float(keras.ops.convert_to_numpy(inner.learning_rate)) == pytest.approx(0.002)
    assert float(keras.ops.convert_to_numpy(optimizer.learning_rate)) == pytest.approx(0.002)
    train(model, optimizer, steps=2)
    assert int(keras.ops.convert_to_numpy(optimizer.iterations)) == 2


def test_a_constraint_still_holds_after_the_scaled_step():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    a = keras.layers.Dense(2, name="a", kernel_constraint=keras.constraints.NonNeg(),
                           kernel_initializer="zeros")(inputs)
    b = keras.layers.Dense(2, name="b")(inputs)
    model = keras.Model(inputs, [a, b])
    got = train(model, DiscriminativeOptimizer(keras.optimizers.SGD(1.0), model,
                                               multipliers={"a": 3.0}))
    assert got["a"][0].min() >= 0 and got["a"][0].max() > 0


# ------------------------------------------------------------------- groups


@pytest.fixture(scope="module")
def vgg_model(vgg16):
    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, add_classifier_head(vgg16(inputs), hidden_units=8))
    return vgg16, model


def multipliers_by_layer(optimizer, model):
    return {layer.name: optimizer.multiplier(layer.weights[0])
            for layer in weight_layers(model) if layer.weights}


def test_layer_decay_over_vgg16_blocks(vgg_model):
    base, model = vgg_model
    optimizer = DiscriminativeOptimizer(keras.optimizers.Adam(1e-3), model, layer_decay=0.5)
    got = multipliers_by_layer(optimizer, model)
    expected = {f"block{b}_conv{c}": 0.5 ** (5 - b)
                for b in range(1, 6) for c in range(1, 4 if b > 2 else 3)}
    expected |= {"head_dense": 1.0, "head_output": 1.0}
    assert got == expected
    assert optimizer.describe() == "\n".join([
        "Adam with learning rates per group",
        "group         weights  multiplier  learning rate",
        "block1        4        0.0625      6.25e-05",
        "block2        4        0.125       0.000125",
        "block3        6        0.25        0.00025",
        "block4        6        0.5         0.0005",
        "block5        6        1           0.001",
        "other layers  4        1           0.001",
    ])


def test_keys_name_layers_blocks_patterns_and_layers_and_beat_layer_decay(vgg_model):
    base, model = vgg_model
    optimizer = DiscriminativeOptimizer(
        keras.optimizers.SGD(0.1), model, layer_decay=0.5,
        multipliers={"block1": 0.0, re.compile(r"block5_conv[12]"): 0.3,
                     model.get_layer("head_output"): 2.0},
        learning_rates={"head_dense": 0.05},
    )
    got = multipliers_by_layer(optimizer, model)
    assert got["block1_conv1"] == got["block1_conv2"] == 0.0
    assert got["block2_conv1"] == 0.125 and got["block5_conv3"] == 1.0
    assert got["block5_conv1"] == got["block5_conv2"] == 0.3
    assert got["head_output"] == 2.0 and got["head_dense"] == pytest.approx(0.5)
    # A nested model's name covers all its layers.
    whole = DiscriminativeOptimizer("sgd", model, multipliers={"vgg16": 0.1})
    assert set(multipliers_by_layer(whole, model).values()) == {0.1, 1.0}
    assert multipliers_by_layer(whole, model)["block3_conv2"] == 0.1


@pytest.mark.parametrize(
    "options, error, message",
    [
        ({"multipliers": {"block6": 0.1}}, ValueError,
         r"no layer or block named 'block6'\. Did you mean 'block5'"),
        ({"multipliers": {re.compile("conv"): 0.1}}, ValueError,
         "no layer name .* matches the pattern 'conv'"),
        ({"multipliers": {"block5": 0.1, "block5_conv1": 0.2}}, ValueError,
         r"'block5_conv1/kernel' is matched by two groups, multipliers\['block5'\] and "
         r"multipliers\['block5_conv1'\]"),
        ({"multipliers": {"head_output": 1.0}, "learning_rates": {"head_output": 1e-3}},
         ValueError, r"two groups, multipliers\['head_output'\] and learning_rates\["),
        ({"multipliers": {"head_dropout": 0.5}}, ValueError, "only layers without weights"),
        ({"multipliers": {3: 0.5}}, TypeError, "a key must be a layer name"),
        ({"multipliers": {"block5": -1.0}}, ValueError, r"multipliers\['block5'\]"),
        ({"multipliers": {"block5": True}}, TypeError, r"multipliers\['block5'\]"),
        ({"multipliers": ["block5"]}, TypeError, "must be a dict"),
        ({"multipliers": {}}, ValueError, "is empty"),
        ({"layer_decay": 0.0}, ValueError, "layer_decay"),
        ({"layer_decay": 1.5}, ValueError, "layer_decay"),
        ({"base": "vgg16"}, ValueError, "only used with layer_decay"),
        ({"layer_decay": 0.5, "base": "vgg16"}, TypeError, "must be a PretrainedBase"),
    ],
)
def test_bad_groups_are_refused(vgg_model, options, error, message):
    _, model = vgg_model
    with pytest.raises(error, match=message):
        DiscriminativeOptimizer(keras.optimizers.SGD(0.1), model, **options)


def test_refusals_of_optimizers_and_models(vgg_model):
    base, model = vgg_model
    with pytest.raises(ValueError, match="cannot wrap Ftrl"):
        DiscriminativeOptimizer(keras.optimizers.Ftrl(0.1), model)
    with pytest.raises(ValueError, match="use_ema=True"):
        DiscriminativeOptimizer(keras.optimizers.Adam(use_ema=True), model)
    with pytest.raises(TypeError, match="already a DiscriminativeOptimizer"):
        DiscriminativeOptimizer(DiscriminativeOptimizer("sgd"), model)
    with pytest.raises(TypeError, match="must be a Keras optimizer"):
        DiscriminativeOptimizer(0.1, model)
    with pytest.raises(ValueError, match=r"needs the model to resolve \['layer_decay'\]"):
        DiscriminativeOptimizer("sgd", layer_decay=0.5)
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)
    with pytest.raises(ValueError, match="needs a constant learning rate"):
        DiscriminativeOptimizer(keras.optimizers.SGD(schedule), model,
                                learning_rates={"block5": 1e-3})
    other = PretrainedBase("vgg16", input_shape=(32, 32, 3), weights=None, name="other",
                           output_layer="block1")
    with pytest.raises(ValueError, match="has 2 PretrainedBases: pass base="):
        DiscriminativeOptimizer("sgd", keras.Model(model.input, [model.output,
                                other(model.input)]), layer_decay=0.5)
    with pytest.raises(ValueError, match="'other' is not part of the model"):
        DiscriminativeOptimizer("sgd", model, layer_decay=0.5, base=other)
    head_only = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="has no PretrainedBase"):
        DiscriminativeOptimizer("sgd", head_only, layer_decay=0.5)
    with pytest.raises(ValueError, match="has no weights yet"):
        DiscriminativeOptimizer("sgd", keras.Sequential([keras.layers.Dense(1)]),
                                multipliers={"dense": 0.1})


class Counter(keras.layers.Layer):
    """A layer with an integer weight, which no optimizer can train."""

    def build(self, input_shape):
        self.count = self.add_weight(shape=(), dtype="int32", initializer="zeros",
                                     trainable=False, name="count")

    def call(self, x):
        return x


def test_only_weights_that_can_train_are_grouped():
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(1, name="d")(Counter(name="counter")(inputs))
    model = keras.Model(inputs, outputs)
    optimizer = DiscriminativeOptimizer("sgd", model, multipliers={"d": 0.5})
    assert optimizer.get_config()["groups"] == [["d", 0.5, ["d/kernel", "d/bias"]]]
    with pytest.raises(ValueError, match=r"multipliers\['counter'\] matches only layers "
                                         "without weights to train"):
        DiscriminativeOptimizer("sgd", model, multipliers={"counter": 0.5})


def test_an_optimizer_made_for_another_model_says_so_when_training_starts():
    model = two_heads()
    optimizer = DiscriminativeOptimizer("sgd", model, multipliers={"a": 0.5})
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="c")])
    other.compile(optimizer, "mse")
    with pytest.raises(ValueError, match="does not know the variable '.*c/kernel'"):
        other.fit(X, Y, verbose=0)


# -------------------------------------------------------------- block groups


def test_block_groups_of_vgg16_and_mobilenet_v2_and_a_landmark_family(vgg16):
    assert [(name, [layer.name for layer in layers]) for name, layers in
            block_groups(vgg16)][:2] == [("block1", ["block1_conv1", "block1_conv2"]),
                                         ("block2", ["block2_conv1", "block2_conv2"])]
    assert [name for name, _ in block_groups(vgg16)] == [f"block{i}" for i in range(1, 6)]
    mobilenet_v2 = PretrainedBase("mobilenet_v2", input_shape=(32, 32, 3), weights=None,
                                  application_kwargs={"alpha": 0.35})
    groups = dict(block_groups(mobilenet_v2))
    assert list(groups) == ["stem", "expanded_conv"] + [f"block_{i}" for i in range(1, 17)]
    assert [layer.name for layer in groups["stem"]] == ["Conv1", "bn_Conv1"]
    # The layers after the last block join it.
    assert [layer.name for layer in groups["block_16"]][-2:] == ["Conv_1", "Conv_1_bn"]
    covered = [layer for layers in groups.values() for layer in layers]
    assert covered == [layer for layer in mobilenet_v2.layers if layer.weights]
    mobilenet = PretrainedBase("mobilenet", input_shape=(32, 32, 3), weights=None,
                               application_kwargs={"alpha": 0.25})
    groups = dict(block_groups(mobilenet))
    assert list(groups) == [f"conv_pw_{i}_relu" for i in range(1, 14)]
    assert [layer.name for layer in groups["conv_pw_1_relu"]][:2] == ["conv1", "conv1_bn"]
    assert [layer.name for layer in groups["conv_pw_2_relu"]] == [
        "conv_dw_2", "conv_dw_2_bn", "conv_pw_2", "conv_pw_2_bn"]
    with pytest.raises(TypeError, match="must be a PretrainedBase"):
        block_groups(keras.Sequential([keras.layers.Dense(1)]))


# ------------------------------------------------------ freezing and saving


def test_frozen_layers_stay_frozen_and_recompile_keeps_the_groups(vgg16, pictures):
    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, add_classifier_head(vgg16(inputs), hidden_units=4))
    vgg16.freeze_until("block5")
    model.compile(DiscriminativeOptimizer(keras.optimizers.SGD(1e-4), model,
                                          multipliers={"block4": 10.0, "block5": 0.5}),
                  "binary_crossentropy", run_eagerly=True)
    labels = np.array([0, 1] * 4, "float32")
    frozen = [w.copy() for w in vgg16.get_layer("block4_conv3").get_weights()]
    model.fit(pictures, labels, batch_size=4, epochs=1, verbose=0)
    assert all(np.array_equal(a, b) for a, b in
               zip(frozen, vgg16.get_layer("block4_conv3").get_weights()))
    # Unfreezing block4 with recompile=: the new optimizer has the same groups.
    vgg16.freeze_until("block4", recompile=model)
    optimizer = model.optimizer
    assert isinstance(optimizer, DiscriminativeOptimizer)
    assert optimizer.multiplier(vgg16.get_layer("block4_conv3").kernel) == 10.0
    assert optimizer.multiplier(vgg16.get_layer("block5_conv1").kernel) == 0.5
    model.fit(pictures, labels, batch_size=4, epochs=1, verbose=0)
    assert not np.array_equal(frozen[0], vgg16.get_layer("block4_conv3").get_weights()[0])
    vgg16.unfreeze(recompile=model)


def test_save_and_load_keep_the_groups_and_the_state(tmp_path):
    model = two_heads()
    optimizer = DiscriminativeOptimizer(keras.optimizers.Adam(0.1), model,
                                        multipliers={"a": 0.25})
    train(model, optimizer, steps=2)
    optimizer.pause_updates([model.get_layer("b").kernel])
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert isinstance(loaded.optimizer, DiscriminativeOptimizer)
    assert loaded.optimizer.get_config() == optimizer.get_config()
    assert loaded.optimizer.describe() == optimizer.describe()
    for ours, theirs in zip(optimizer.inner_optimizer.variables,
                            loaded.optimizer.inner_optimizer.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours),
                                      keras.ops.convert_to_numpy(theirs))
    # A loaded optimizer gives every group its multiplier (nothing held still).
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded.optimizer.variables[2]), [0.25, 0.25, 1, 1])
    optimizer.resume_updates()
    again = [model, loaded]
    for m in again:
        m.fit(X[8:], (Y[8:], Y[8:]), batch_size=4, epochs=1, shuffle=False, verbose=0)
    for ours, theirs in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(ours, theirs)


def test_pause_and_resume_updates():
    model = two_heads()
    optimizer = DiscriminativeOptimizer(keras.optimizers.SGD(0.1), model,
                                        multipliers={"a": 0.25})
    a_kernel = model.get_layer("a").kernel
    optimizer.pause_updates([a_kernel])  # before the optimizer is built
    before = keras.ops.convert_to_numpy(a_kernel)
    got = train(model, optimizer, steps=2)
    np.testing.assert_array_equal(got["a"][0], before)
    assert not np.array_equal(got["a"][1], np.zeros(2))  # the bias was not paused
    optimizer.resume_updates([a_kernel])
    assert optimizer.multiplier(a_kernel) == 0.25
    model.fit(X[:4], (Y[:4], Y[:4]), batch_size=4, verbose=0)
    assert not np.array_equal(keras.ops.convert_to_numpy(a_kernel), before)


# ---------------------------------------------------------- several devices

_TWO_DEVICES = r"""
import json
import os

backend = os.environ["KERAS_BACKEND"]
if backend == "tensorflow":
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
import numpy as np
from keras_smalldata.pretrained import DiscriminativeOptimizer

x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
y = np.random.default_rng(1).normal(size=(16, 2)).astype("float32")


def train():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, [keras.layers.Dense(2, name="a")(inputs),
                                 keras.layers.Dense(2, name="b")(inputs)])
    optimizer = DiscriminativeOptimizer(keras.optimizers.Adam(0.1), model,
                                        multipliers={"a": 0.25})
    model.compile(optimizer, ["mse", "mse"])
    model.fit(x, (y, y), batch_size=8, epochs=2, shuffle=False, verbose=0)
    if backend == "tensorflow":
        devices = model.distribute_strategy.num_replicas_in_sync
    else:
        devices = len(model.weights[0].value.sharding.device_set)
    return {"devices": devices,
            "weights": [keras.ops.convert_to_numpy(w).tolist() for w in model.weights]}


if backend == "tensorflow":
    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
        one = train()
    with tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]).scope():
        two = train()
else:
    import jax

    one = train()
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices()))
    two = train()
print("RESULT " + json.dumps({"one": one, "two": two}))
"""


@pytest.mark.skipif(keras.backend.backend() == "torch", reason="no multi-device engine here")
def test_two_devices_train_as_one():
    # MirroredStrategy on TensorFlow, DataParallel on JAX; devices are set up
    # before the framework starts, so in a fresh process.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    result = subprocess.run([sys.executable, "-c", _TWO_DEVICES], env=env,
                            capture_output=True, text=True, timeout=600)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, result.stdout[-2000:] + result.stderr[-4000:]
    one, two = json.loads(lines[0][len("RESULT "):]).values()
    assert (one["devices"], two["devices"]) == (1, 2)
    for a, b in zip(one["weights"], two["weights"]):
        np.testing.assert_allclose(np.array(b), np.array(a), rtol=1e-5, atol=1e-6)
