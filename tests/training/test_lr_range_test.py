"""lr_range_test: exact losses against NumPy, state restored, DiscriminativeOptimizer, stops."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

from keras_smalldata.pretrained.learning_rates import DiscriminativeOptimizer
from keras_smalldata.training import (
    LearningRateRange,
    OneCycle,
    lr_range_test,
    smooth_curve,
)
from keras_smalldata.training.lr_range_test import _suggestions

RNG = np.random.default_rng(0)
X = RNG.normal(size=(12, 3)).astype("float32")
TRUE_W = np.array([[1.5], [-2.0], [0.5]], dtype="float32")
Y = (X @ TRUE_W).astype("float32")
W0 = np.array([[0.1], [0.2], [-0.3]], dtype="float32")


def linear_model(optimizer=None, name="linear"):
    """y = x @ w: its MSE, gradient and SGD steps are easy to compute in NumPy."""
    inputs = keras.Input((3,))
    outputs = keras.layers.Dense(1, use_bias=False, name="weights",
                                 kernel_initializer=keras.initializers.Constant(W0))(inputs)
    model = keras.Model(inputs, outputs, name=name)
    model.compile(optimizer or keras.optimizers.SGD(0.01), "mse")
    return model


def numpy_range_test(batches, rates, w=W0):
    """The losses of plain SGD on MSE, one rate per batch, loss taken before the step."""
    w = w.astype("float64")
    losses = []
    for step, rate in enumerate(rates):
        x, y = (b.astype("float64") for b in batches[step % len(batches)])
        error = x @ w - y
        losses.append(float(np.mean(error**2)))
        w = w - rate * (2.0 / len(x)) * x.T @ error
    return np.array(losses)


def three_batches():
    return tf.data.Dataset.from_tensor_slices((X, Y)).batch(4)


def snapshot(*variables):
    return [keras.ops.convert_to_numpy(v).copy() for v in variables]


def assert_same(before, after):
    assert len(before) == len(after)
    for b, a in zip(before, after):
        np.testing.assert_array_equal(a, b)


@pytest.mark.filterwarnings("ignore:lr_range_test")
def test_losses_rates_and_smoothing_match_numpy_sgd_with_the_dataset_repeated():
    model = linear_model()
    result = lr_range_test(model, three_batches(), start=1e-3, stop=0.2, steps=8,
                           factor=0.5, divergence=None, verbose=0)
    assert isinstance(result, LearningRateRange)
    rates = 1e-3 * (0.2 / 1e-3) ** (np.arange(8) / 7)
    np.testing.assert_allclose(result.learning_rates, rates, rtol=1e-12)
    batches = [(X[i : i + 4], Y[i : i + 4]) for i in (0, 4, 8)]  # 3 batches for 8 steps
    np.testing.assert_allclose(result.losses, numpy_range_test(batches, rates), rtol=2e-5)
    np.testing.assert_allclose(result.smoothed_losses,
                               smooth_curve(result.losses, 0.5, debias=True), rtol=1e-12)
    assert result.stop_reason == "completed"
    # The weights and the SGD rate are back.
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.weights[0]), W0)
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == np.float32(0.01)


def test_arrays_are_batched_and_shuffled_reproducibly_with_seed():
    rates = np.geomspace(1e-3, 0.1, 6)
    # One batch of everything: the order inside the batch does not change the loss.
    whole = lr_range_test(linear_model(), (X, Y), start=1e-3, stop=0.1, steps=6,
                          batch_size=12, verbose=0)
    np.testing.assert_allclose(whole.losses, numpy_range_test([(X, Y)], rates), rtol=2e-5)
    first = lr_range_test(linear_model(), (X, Y), start=1e-3, stop=0.1, steps=6,
                          batch_size=5, seed=3, verbose=0)
    again = lr_range_test(linear_model(), (X, Y), start=1e-3, stop=0.1, steps=6,
                          batch_size=5, seed=3, verbose=0)
    np.testing.assert_array_equal(first.losses, again.losses)
    # Batches of 5, 5 and 2 pictures in a shuffled order, then a new order.
    order = np.random.default_rng(3)
    passes = [order.permutation(12), order.permutation(12)]
    batches = [(X[p[i : i + 5]], Y[p[i : i + 5]]) for p in passes for i in (0, 5, 10)]
    np.testing.assert_allclose(first.losses, numpy_range_test(batches, rates), rtol=2e-5)


def classifier(seed=0, optimizer=None):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8,))
    x = keras.layers.Dense(16, activation="relu", name="hidden")(inputs)
    x = keras.layers.BatchNormalization(name="norm")(x)
    # Seeded: PyTorch's unseeded dropout draws from torch's global generator,
    # which any training moves on (the range test too, and fit's first build).
    x = keras.layers.Dropout(0.3, seed=5, name="drop")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="out")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer or keras.optimizers.Adam(1e-2), "binary_crossentropy",
                  metrics=["accuracy"])
    return model


PICTURES = RNG.normal(size=(32, 8)).astype("float32")
LABELS = (PICTURES[:, :1] + PICTURES[:, 1:2] > 0).astype("float32")


@pytest.mark.filterwarnings("ignore:lr_range_test")
def test_everything_is_restored_after_training_and_after_divergence():
    model = classifier()
    model.fit(PICTURES, LABELS, batch_size=8, epochs=1, verbose=0)  # a used optimizer
    optimizer = model.optimizer
    variables = [*model.variables, *optimizer.variables, *model.metrics_variables]
    before = snapshot(*variables)
    assert int(keras.ops.convert_to_numpy(optimizer.iterations)) == 4
    result = lr_range_test(model, (PICTURES, LABELS), start=1e-4, stop=1e3, steps=60,
                           batch_size=8, verbose=0)
    assert len(result.losses) > 10
    assert_same(before, snapshot(*variables))
    assert int(keras.ops.convert_to_numpy(optimizer.iterations)) == 4
    # A BatchNormalization statistic, a kernel and Adam's moments are among them.
    paths = [v.path for v in variables]
    assert any("moving_mean" in p for p in paths) and any("momentum" in p for p in paths)


@pytest.mark.filterwarnings("ignore:lr_range_test")
def test_fit_after_the_test_is_the_fit_without_it():
    tested, untouched = classifier(), classifier()
    assert not tested.optimizer.built
    lr_range_test(tested, (PICTURES, LABELS), start=1e-4, stop=10.0, steps=12, batch_size=8,
                  divergence=None, verbose=0)
    for model in (tested, untouched):
        model.fit(PICTURES, LABELS, batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert_same(snapshot(*untouched.variables, *untouched.optimizer.variables),
                snapshot(*tested.variables, *tested.optimizer.variables))


@pytest.mark.filterwarnings("ignore:lr_range_test")
def test_an_unbuilt_sequential_model_is_built_and_trained():
    model = keras.Sequential([keras.layers.Dense(4, activation="relu"), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(), "mse")
    result = lr_range_test(model, (X, Y), steps=5, start=1e-4, stop=1e-2, verbose=0)
    assert model.built and len(result.losses) == 5


def discriminative_model(multiplier, inner):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(4, activation="tanh", name="a")(inputs)
    outputs = keras.layers.Dense(1, name="b")(hidden)
    model = keras.Model(inputs, outputs)
    if multiplier is None:
        optimizer = inner
    else:
        optimizer = DiscriminativeOptimizer(inner, model,
                                            multipliers={"a": multiplier, "b": multiplier})
    model.compile(optimizer, "mse")
    return model


def single_batch():
    return tf.data.Dataset.from_tensors((X, Y))


def test_discriminative_optimizer_keeps_its_multipliers_and_is_restored():
    # Multiplier 0: nothing moves, so every step sees the first loss.
    model = discriminative_model(0.0, keras.optimizers.SGD(0.05))
    optimizer = model.optimizer
    optimizer.build(model.trainable_variables)
    before = snapshot(*model.variables, *optimizer.variables)
    held = lr_range_test(model, single_batch(), start=1e-3, stop=1.0, steps=6, verbose=0)
    np.testing.assert_array_equal(held.losses, np.full(6, held.losses[0]))
    assert_same(before, snapshot(*model.variables, *optimizer.variables))
    assert float(keras.ops.convert_to_numpy(optimizer.learning_rate)) == np.float32(0.05)

    # Multiplier 0.5 over the whole range is the plain range at half the rates.
    halved = lr_range_test(discriminative_model(0.5, keras.optimizers.SGD()), single_batch(),
                           start=2e-3, stop=0.4, steps=8, verbose=0)
    plain = lr_range_test(discriminative_model(None, keras.optimizers.SGD()), single_batch(),
                          start=1e-3, stop=0.2, steps=8, verbose=0)
    assert not np.array_equal(halved.losses, np.full(8, halved.losses[0]))
    np.testing.assert_allclose(halved.losses, plain.losses, rtol=1e-5)
    np.testing.assert_allclose(halved.learning_rates, 2 * plain.learning_rates, rtol=1e-12)


def test_a_non_finite_loss_stops_the_test_and_the_result_is_returned():
    model = linear_model()
    result = lr_range_test(model, single_batch(), start=1e-2, stop=1e12, steps=50,
                           divergence=None, verbose=0)
    assert result.stop_reason == "non-finite loss"
    assert 2 < len(result.losses) < 50
    assert not math.isfinite(result.losses[-1]) and np.isnan(result.smoothed_losses[-1])
    assert np.all(np.isfinite(result.losses[:-1]))
    np.testing.assert_array_equal(result.learning_rates, np.geomspace(1e-2, 1e12, 50)[
        : len(result.losses)])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.weights[0]), W0)
    result.plot()  # draws with the NaN end


def test_divergence_stops_at_the_first_smoothed_loss_above_four_times_the_best():
    model = linear_model()
    result = lr_range_test(model, single_batch(), start=1e-3, stop=1e3, steps=60, verbose=0)
    assert result.stop_reason == "diverged"
    smoothed = result.smoothed_losses
    assert np.all(np.isfinite(smoothed))
    best_before = np.minimum.accumulate(smoothed)
    assert smoothed[-1] > 4 * best_before[-1]
    assert np.all(smoothed[:-1] <= 4 * best_before[:-1])
    # The loss fell before it blew up: the suggestion lies on the way down.
    assert result.suggestion is not None
    assert result.learning_rates[0] < result.suggestion < result.minimum_rate


def test_suggestion_is_the_steepest_descent_before_the_minimum():
    # 1 - exp(-(u - m)^2 / 2s^2), u = log10(rate): the minimum at u = m, the
    # steepest descent at u = m - s; the rise after the minimum is ignored.
    u = np.linspace(-6, 0, 121)  # steps of 0.05
    m, s = -2.0, 0.5
    smoothed = 1 - np.exp(-((u - m) ** 2) / (2 * s**2))
    suggestion, minimum = _suggestions(10**u, smoothed)
    np.testing.assert_allclose(minimum, 10**m, rtol=1e-9)
    np.testing.assert_allclose(suggestion, 10 ** (m - s), rtol=1e-9)
    # A loss that only rises has no suggestion; NaN points are skipped.
    assert _suggestions(10**u, u + 10) == (None, 1e-6)
    with_nan = smoothed.copy()
    with_nan[[3, 50]] = np.nan
    assert _suggestions(10**u, with_nan)[0] == pytest.approx(10 ** (m - s))


def test_the_noisy_start_of_the_average_is_not_the_suggestion():
    # Seen on a real fine-tuning run: the first smoothed points swing (they
    # average one or two batches) and fell faster than the real descent, so
    # the suggestion was the first rate tried, 1e-7.
    u = np.linspace(-7, 0, 100)
    m, s = -4.0, 0.5
    smoothed = 1 - 0.1 * np.exp(-((u - m) ** 2) / (2 * s**2))
    smoothed[:5] = [1.3, 1.0, 0.97, 0.99, 1.0]
    suggestion, minimum = _suggestions(10**u, smoothed)
    assert 10 ** (m - 1) < suggestion < minimum
    # a minimum within the skipped start gives no suggestion
    assert _suggestions(10**u, u)[0] is None


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.01, 10.0), min_size=2, max_size=40))
def test_suggestion_is_a_tried_rate_not_above_the_minimum(losses):
    rates = np.geomspace(1e-5, 1.0, len(losses))
    suggestion, minimum = _suggestions(rates, np.array(losses))
    assert minimum == rates[int(np.argmin(losses))]
    if suggestion is not None:
        assert suggestion in rates and suggestion < minimum


def test_no_suggestion_warns_when_the_loss_only_rises():
    with pytest.warns(UserWarning, match="never fell"):
        result = lr_range_test(linear_model(), single_batch(), start=10.0, stop=1e4, steps=20,
                               verbose=0)
    assert result.suggestion is None and result.minimum_rate == 10.0
    figure = result.plot()
    assert not [line for line in figure.axes[0].get_lines() if line.get_gid() == "suggestion"]


def test_plot_draws_the_losses_on_a_log_axis_with_the_suggestion_marked():
    result = lr_range_test(linear_model(), single_batch(), start=1e-3, stop=1e3, steps=60,
                           verbose=0)
    figure = result.plot()
    assert isinstance(figure, Figure)
    ax = figure.axes[0]
    assert ax.get_xscale() == "log"
    lines = {line.get_label(): line for line in ax.get_lines()}
    np.testing.assert_array_equal(lines["loss"].get_ydata(), result.losses)
    np.testing.assert_array_equal(lines["smoothed loss"].get_ydata(), result.smoothed_losses)
    marks = [line for line in ax.get_lines() if line.get_gid() == "suggestion"]
    assert len(marks) == 1 and list(marks[0].get_xdata()) == [result.suggestion] * 2
    # Into an Axes of the caller's figure.
    other = Figure()
    ax = other.add_subplot()
    assert result.plot(ax=ax) is other


def test_progress_bar_unless_verbose_0(capsys):
    lr_range_test(linear_model(), single_batch(), start=1e-3, stop=1e-1, steps=4, verbose=1)
    assert "learning_rate" in capsys.readouterr().out
    lr_range_test(linear_model(), single_batch(), start=1e-3, stop=1e-1, steps=4, verbose=0)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"start": 1.0, "stop": 1e-3}, ValueError, "smaller than `stop`"),
        ({"start": 1e-3, "stop": 1e-3}, ValueError, "smaller than `stop`"),
        ({"start": 0.0}, ValueError, "`start` must be a number > 0"),
        ({"stop": "1"}, TypeError, "`stop`"),
        ({"steps": 1}, ValueError, "`steps` must be an int >= 2"),
        ({"steps": 10.0}, TypeError, "`steps`"),
        ({"factor": 1.0}, ValueError, "`factor`"),
        ({"divergence": 1.0}, ValueError, "`divergence` must be a number > 1"),
        ({"verbose": 2}, ValueError, "`verbose`"),
        ({"seed": -1}, ValueError, "`seed`"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        lr_range_test(linear_model(), (X, Y), **{"verbose": 0, **kwargs})


def test_bad_models_and_data():
    uncompiled = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="not compiled"):
        lr_range_test(uncompiled, (X, Y))
    with pytest.raises(TypeError, match="keras.Model"):
        lr_range_test("model", (X, Y))
    scheduled = linear_model(keras.optimizers.Adam(OneCycle(1e-2, 100)))
    with pytest.raises(ValueError, match="schedule.*constant rate"):
        lr_range_test(scheduled, (X, Y))
    model = discriminative_model(0.5, keras.optimizers.SGD(OneCycle(1e-2, 100)))
    with pytest.raises(ValueError, match="schedule"):
        lr_range_test(model, (X, Y))
    accumulating = linear_model(keras.optimizers.SGD(gradient_accumulation_steps=4))
    with pytest.raises(ValueError, match="accumulates gradients over 4"):
        lr_range_test(accumulating, (X, Y))
    model = linear_model()
    with pytest.raises(TypeError, match=r"tuple of arrays \(x, y\)"):
        lr_range_test(model, X)
    with pytest.raises(ValueError, match=r"same number of samples. Received lengths \[11, 12\]"):
        lr_range_test(model, (X, Y[:11]))
    with pytest.raises(ValueError, match="already batched"):
        lr_range_test(model, three_batches(), batch_size=4)
    with pytest.raises(ValueError, match="empty dataset"):
        lr_range_test(model, three_batches().take(0))
    with pytest.raises(ValueError, match=r"batches \(x, y\)"):
        lr_range_test(model, tf.data.Dataset.from_tensor_slices(X).batch(4))
    frozen = linear_model()
    frozen.trainable = False
    frozen.compile(keras.optimizers.SGD(), "mse")
    with pytest.raises(ValueError, match="no trainable weights"):
        lr_range_test(frozen, (X, Y))
