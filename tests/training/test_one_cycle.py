"""OneCycle: PyTorch's OneCycleLR as reference, shape, saving, with DiscriminativeOptimizer
and GradualUnfreezing."""

import math
import warnings

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_smalldata.pretrained import (
    PretrainedBase,
    StaleCompileWarning,
    add_classifier_head,
)
from keras_smalldata.pretrained.learning_rates import DiscriminativeOptimizer
from keras_smalldata.training import GradualUnfreezing, OneCycle


def rates(schedule, steps):
    return keras.ops.convert_to_numpy(schedule(np.asarray(steps))).astype("float64")


def rate(schedule, step):
    return float(keras.ops.convert_to_numpy(schedule(step)))


def test_values_at_the_key_steps():
    # 11 steps, 3 of them warming up: the peak at step 2, the floor at step 10.
    schedule = OneCycle(1e-2, total_steps=11, warmup_fraction=3 / 11)
    assert schedule.initial_rate == pytest.approx(4e-4) and schedule.final_rate == 1e-6
    expected = {
        0: 1e-2 / 25,                    # the start
        1: (1e-2 / 25 + 1e-2) / 2,       # half-way up: cos(pi / 2) = 0
        2: 1e-2,                         # the peak
        6: (1e-2 + 1e-6) / 2,            # half-way down
        10: 1e-6,                        # the floor at the last step
        11: 1e-6,
        1000: 1e-6,                      # and after it
    }
    for step, value in expected.items():
        assert rate(schedule, step) == pytest.approx(value, rel=1e-6), step
    # A quarter of the way down: cos(pi / 4).
    quarter = 1e-6 + (1e-2 - 1e-6) / 2 * (1 + math.cos(math.pi / 4))
    assert rate(schedule, 4) == pytest.approx(quarter, rel=1e-6)
    # Python ints, NumPy ints and the optimizer's int variable all work.
    assert rate(schedule, np.int64(2)) == pytest.approx(1e-2, rel=1e-6)


@pytest.mark.parametrize(
    ("maximal_rate", "total_steps", "warmup_fraction", "initial_divisor", "final_divisor"),
    [
        (1e-3, 100, 0.3, 25.0, 1e4),
        (0.5, 37, 0.25, 10.0, 100.0),
        (2e-4, 10, 0.5, 1.0, 1.0),
        (1e-2, 7, 0.1, 25.0, 1e5),   # the warm-up is shorter than a step
        (1e-2, 50, 0.0, 25.0, 1e3),  # no warm-up
    ],
)
def test_matches_pytorch_one_cycle_lr(
    maximal_rate, total_steps, warmup_fraction, initial_divisor, final_divisor
):
    torch = pytest.importorskip("torch")
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=maximal_rate)
    # PyTorch's final_div_factor divides the initial rate; final_divisor the peak.
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=maximal_rate, total_steps=total_steps, pct_start=warmup_fraction,
        anneal_strategy="cos", cycle_momentum=False, div_factor=initial_divisor,
        final_div_factor=final_divisor / initial_divisor, three_phase=False,
    )
    expected = []
    for _ in range(total_steps):
        expected.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    schedule = OneCycle(maximal_rate, total_steps, warmup_fraction=warmup_fraction,
                        initial_divisor=initial_divisor, final_divisor=final_divisor)
    np.testing.assert_allclose(rates(schedule, np.arange(total_steps)), expected,
                               rtol=1e-5)


@settings(max_examples=60, deadline=None)
@given(
    maximal_rate=st.floats(1e-6, 10.0),
    total_steps=st.integers(1, 300),
    warmup_fraction=st.floats(0.0, 0.99),
    initial_divisor=st.floats(1.0, 1e3),
    final_divisor=st.floats(1.0, 1e6),
)
def test_rises_to_the_peak_then_falls_to_the_floor(
    maximal_rate, total_steps, warmup_fraction, initial_divisor, final_divisor
):
    schedule = OneCycle(maximal_rate, total_steps, warmup_fraction=warmup_fraction,
                        initial_divisor=initial_divisor, final_divisor=final_divisor)
    # One length for every example: JAX compiles each op once per shape.
    values = rates(schedule, np.arange(305))[: total_steps + 5]
    tolerance = 1e-6 * maximal_rate
    peak = int(np.argmax(values))
    assert np.all(np.diff(values[: peak + 1]) >= -tolerance)  # warm-up: up
    assert np.all(np.diff(values[peak:]) <= tolerance)  # then down
    assert values[peak] <= maximal_rate * (1 + 1e-6)
    low = min(maximal_rate / initial_divisor, maximal_rate / final_divisor)
    assert np.all(values >= low * (1 - 1e-5) - tolerance)
    np.testing.assert_allclose(values[total_steps - 1 :], maximal_rate / final_divisor,
                               rtol=1e-5, atol=tolerance)
    if warmup_fraction * total_steps > 1:  # step 0 is in the warm-up
        assert values[0] == pytest.approx(maximal_rate / initial_divisor, rel=1e-5)


def test_config_round_trip_and_registration():
    schedule = OneCycle(3e-3, 120, warmup_fraction=0.25, initial_divisor=10,
                        final_divisor=1e3, name="cycle")
    config = schedule.get_config()
    assert config == {"maximal_rate": 3e-3, "total_steps": 120, "warmup_fraction": 0.25,
                      "initial_divisor": 10.0, "final_divisor": 1e3, "name": "cycle"}
    serialized = keras.saving.serialize_keras_object(schedule)
    assert serialized["registered_name"] == "keras_smalldata>OneCycle"
    restored = keras.saving.deserialize_keras_object(serialized)
    assert isinstance(restored, OneCycle) and restored.get_config() == config
    np.testing.assert_array_equal(rates(restored, np.arange(130)), rates(schedule, np.arange(130)))
    assert OneCycle.from_config(config).get_config() == config
    assert repr(schedule).startswith("OneCycle(maximal_rate=0.003, total_steps=120")


RNG = np.random.default_rng(0)
X = RNG.normal(size=(16, 4)).astype("float32")
Y = (X[:, :1] > 0).astype("float32")


def small_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", name="out")(hidden))


@pytest.mark.parametrize("discriminative", [False, True])
def test_a_compiled_model_saves_and_loads_and_trains_on_the_same(tmp_path, discriminative):
    model = small_model()
    optimizer = keras.optimizers.Adam(OneCycle(5e-2, total_steps=12))
    if discriminative:
        optimizer = DiscriminativeOptimizer(optimizer, model, multipliers={"hidden": 0.1})
    model.compile(optimizer, "binary_crossentropy")
    model.fit(X, Y, batch_size=4, epochs=1, shuffle=False, verbose=0)  # 4 of 12 steps
    current = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    assert current == pytest.approx(rate(OneCycle(5e-2, 12), 4), rel=1e-6)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    inner = loaded.optimizer.inner_optimizer if discriminative else loaded.optimizer
    assert isinstance(inner.get_config()["learning_rate"], dict)  # still a schedule
    assert int(keras.ops.convert_to_numpy(loaded.optimizer.iterations)) == 4
    assert float(keras.ops.convert_to_numpy(loaded.optimizer.learning_rate)) == current
    for each in (model, loaded):
        each.fit(X, Y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    for original, again in zip(model.weights, loaded.weights):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(again),
                                   keras.ops.convert_to_numpy(original), rtol=1e-6, atol=1e-7)


def reference_rate(step, maximal_rate, total_steps, warmup_fraction=0.3, initial_divisor=25.0,
                   final_divisor=1e4):
    """The one-cycle rate in float64 (checked against PyTorch above)."""
    low, high, floor = maximal_rate / initial_divisor, maximal_rate, maximal_rate / final_divisor
    warmup_end = warmup_fraction * total_steps - 1
    if step <= warmup_end:
        return high + (low - high) * (1 + math.cos(math.pi * step / warmup_end)) / 2
    fraction = min(1.0, (step - warmup_end) / (total_steps - 1 - warmup_end))
    return floor + (high - floor) * (1 + math.cos(math.pi * fraction)) / 2


def test_discriminative_multipliers_scale_the_scheduled_rate():
    # Two parallel weights, loss = mean(output): each gradient is exactly 1, so
    # after n SGD steps a weight is -multiplier * (sum of the n rates).
    inputs = keras.Input((1,))
    branches = [
        keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros", name=name)(inputs)
        for name in ("slow", "fast")
    ]
    model = keras.Model(inputs, keras.layers.Add()(branches))
    schedule = OneCycle(0.1, total_steps=10)
    optimizer = DiscriminativeOptimizer(keras.optimizers.SGD(schedule), model,
                                        multipliers={"slow": 0.25})
    assert "0.25 x schedule" in optimizer.describe()
    model.compile(optimizer, lambda y_true, y_pred: keras.ops.mean(y_pred))
    ones = np.ones((12, 1), "float32")
    model.fit(ones, ones, batch_size=2, epochs=2, shuffle=False, verbose=0)  # 12 steps
    total = sum(reference_rate(step, 0.1, 10) for step in range(12))  # the floor after 10
    slow = model.get_layer("slow").kernel
    fast = model.get_layer("fast").kernel
    np.testing.assert_allclose(keras.ops.convert_to_numpy(fast), [[-total]], rtol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(slow), [[-0.25 * total]], rtol=1e-5)


def test_gradual_unfreezing_runs_with_a_one_cycle_optimizer():
    base = PretrainedBase("mobilenet_v2", input_shape=(32, 32, 3), weights=None,
                          application_kwargs={"alpha": 0.35}, output_layer="block_3",
                          train_batchnorm=False)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, add_classifier_head(base(inputs), hidden_units=4, reduce="avg",
                                                    dropout=0.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StaleCompileWarning)
        base.freeze_until("block_2")  # blocks 2 and 3 may train
    schedule = OneCycle(1e-2, total_steps=6)
    model.compile(DiscriminativeOptimizer(keras.optimizers.Adam(schedule), model),
                  "binary_crossentropy")
    block = {name: [layer for layer in base.layers if layer.name.startswith(name + "_")]
             for name in ("block_2", "block_3")}

    class Recorder(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.moved = {}

        def _values(self):
            return {name: [keras.ops.convert_to_numpy(w).copy()
                           for layer in layers for w in layer.trainable_weights]
                    for name, layers in block.items()}

        def on_epoch_begin(self, epoch, logs=None):
            self.before = self._values()

        def on_epoch_end(self, epoch, logs=None):
            self.moved[epoch] = sorted(
                name for name, values in self._values().items()
                if any(not np.array_equal(a, b) for a, b in zip(values, self.before[name])))

    pictures = RNG.uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    labels = (np.arange(8) % 2).astype("float32")
    unfreezing, recorder = GradualUnfreezing(base, every=1), Recorder()
    model.fit(pictures, labels, batch_size=4, epochs=3, callbacks=[unfreezing, recorder],
              verbose=0)
    assert unfreezing.training_blocks == {0: [], 1: ["block_3"], 2: ["block_3", "block_2"]}
    assert recorder.moved == {0: [], 1: ["block_3"], 2: ["block_2", "block_3"]}
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(
        rate(schedule, 6), rel=1e-6)  # at the floor after its 6 steps


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"maximal_rate": 0.0}, ValueError, "`maximal_rate` must be a number > 0"),
        ({"maximal_rate": -1e-3}, ValueError, "`maximal_rate`"),
        ({"maximal_rate": "1e-3"}, TypeError, "`maximal_rate`"),
        ({"maximal_rate": math.inf}, ValueError, "`maximal_rate`"),
        ({"total_steps": 0}, ValueError, "`total_steps` must be a positive int"),
        ({"total_steps": 100.0}, TypeError, "`total_steps`"),
        ({"warmup_fraction": 1.0}, ValueError,
         r"`warmup_fraction` must be a number in \[0, 1\)"),
        ({"warmup_fraction": 30}, ValueError, "`warmup_fraction`"),
        ({"initial_divisor": 0.5}, ValueError, "`initial_divisor` must be a number >= 1"),
        ({"final_divisor": 0}, ValueError, "`final_divisor`"),
        ({"final_divisor": True}, TypeError, "`final_divisor`"),
        ({"name": 3}, TypeError, "`name`"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    arguments = {"maximal_rate": 1e-3, "total_steps": 100, **kwargs}
    with pytest.raises(error, match=match):
        OneCycle(**arguments)
