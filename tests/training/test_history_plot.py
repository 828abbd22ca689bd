"""Tests for `plot_history`."""

import math

import keras
import numpy as np
import pytest
from matplotlib.figure import Figure

from keras_smalldata.training import (
    CurveSmoothing,
    plot_history,
    save_history,
    smooth_curve,
)

HISTORY = {
    "accuracy": [0.5, 0.625, 0.75, 0.8125, 0.875],
    "loss": [0.75, 0.625, 0.5, 0.4375, 0.375],
    "val_accuracy": [0.5, 0.75, 0.625, 0.6875, 0.75],
    "val_loss": [0.8, 0.55, 0.6, 0.5, 0.52],
    "loss_smoothed": [0.75, 0.7, 0.66, 0.6, 0.55],  # from CurveSmoothing: not a panel
    "val_loss_smoothed": [0.8, 0.75, 0.72, 0.68, 0.65],
    "learning_rate": [0.01] * 5,
}


def lines_by_label(ax):
    return {line.get_label(): line for line in ax.get_lines()}


def best_marker(ax):
    stars = [line for line in ax.get_lines() if line.get_label().startswith("Best epoch")]
    assert len(stars) <= 1
    return stars[0] if stars else None


def check_panel(ax, name, history, factor=0.8):
    lines = lines_by_label(ax)
    epochs = np.arange(1, len(history[name]) + 1)
    raw = lines[f"Training {name}"]
    assert raw.get_linestyle() == "None" and raw.get_marker() == "o"
    np.testing.assert_array_equal(raw.get_xdata(), epochs)
    np.testing.assert_array_equal(raw.get_ydata(), history[name])
    smoothed = lines[f"Training {name} (smoothed)"]
    assert smoothed.get_linestyle() == "-" and smoothed.get_marker() == "None"
    np.testing.assert_array_equal(smoothed.get_xdata(), epochs)
    np.testing.assert_allclose(smoothed.get_ydata(), smooth_curve(history[name], factor), rtol=1e-12)
    val = lines[f"Validation {name}"]
    np.testing.assert_array_equal(val.get_ydata(), history[f"val_{name}"])
    assert raw.get_color() != val.get_color()
    assert lines[f"Validation {name} (smoothed)"].get_color() == val.get_color()


def test_dict_panels_titles_lines_and_best_epochs():
    fig = plot_history(HISTORY)
    assert isinstance(fig, Figure)
    assert [ax.get_title() for ax in fig.axes] == [
        "Training and validation accuracy",
        "Training and validation loss",
    ]
    assert [ax.get_xlabel() for ax in fig.axes] == ["Epoch", "Epoch"]
    for ax, name in zip(fig.axes, ["accuracy", "loss"]):
        check_panel(ax, name, HISTORY)
    # accuracy: max of val_accuracy is 0.75 at epochs 2 and 5 -> the first, 2.
    star = best_marker(fig.axes[0])
    assert list(star.get_xdata()) == [2] and list(star.get_ydata()) == [0.75]
    assert star.get_label() == "Best epoch 2 (0.75)"
    # loss: min of val_loss is 0.5 at epoch 4.
    star = best_marker(fig.axes[1])
    assert list(star.get_xdata()) == [4] and list(star.get_ydata()) == [0.5]
    # The dashed vertical line at the same epoch.
    vertical = [ln for ln in fig.axes[1].get_lines() if ln.get_linestyle() == "--"]
    assert len(vertical) == 1 and list(vertical[0].get_xdata()) == [4, 4]


def test_metrics_selection_order_and_typo():
    fig = plot_history(HISTORY, metrics=["loss", "val_accuracy"])
    assert [ax.get_title() for ax in fig.axes] == [
        "Training and validation loss",
        "Training and validation accuracy",
    ]
    assert len(plot_history(HISTORY, metrics="loss").axes) == 1
    with pytest.raises(ValueError, match=r"'los' is not in the history.*Did you mean \['loss'\]"):
        plot_history(HISTORY, metrics=["los"])
    with pytest.raises(ValueError, match="'learning_rate' is not in the history"):
        plot_history(HISTORY, metrics=["learning_rate"])


def test_smoothing_none_and_figsize():
    fig = plot_history(HISTORY, smoothing=None, figsize=(8, 3))
    assert tuple(fig.get_size_inches()) == (8, 3)
    labels = set(lines_by_label(fig.axes[1]))
    assert not any("smoothed" in label for label in labels)
    fig = plot_history(HISTORY, smoothing=0.0)
    smoothed = lines_by_label(fig.axes[1])["Training loss (smoothed)"]
    np.testing.assert_array_equal(smoothed.get_ydata(), HISTORY["loss"])
    fig = plot_history(HISTORY, smoothing=0.5)
    check_panel(fig.axes[1], "loss", HISTORY, factor=0.5)


def test_nan_values_are_left_out():
    history = {"loss": [1.0, math.nan, 0.5, 0.25], "val_loss": [0.5, 0.1, math.nan, 0.75]}
    history["val_loss"][1] = math.inf  # diverged epoch
    fig = plot_history(history, smoothing=0.5)
    lines = lines_by_label(fig.axes[0])
    np.testing.assert_array_equal(lines["Training loss"].get_xdata(), [1, 3, 4])
    np.testing.assert_array_equal(lines["Training loss (smoothed)"].get_xdata(), [1, 3, 4])
    np.testing.assert_array_equal(lines["Training loss (smoothed)"].get_ydata(), [1.0, 0.75, 0.5])
    np.testing.assert_array_equal(lines["Validation loss"].get_xdata(), [1, 4])
    star = best_marker(fig.axes[0])
    assert list(star.get_xdata()) == [1] and list(star.get_ydata()) == [0.5]


def test_training_only_unknown_direction_and_many_panels():
    fig = plot_history({"loss": [1.0, 0.5], "widgets": [3.0, 4.0], "val_widgets": [1.0, 2.0]})
    assert [ax.get_title() for ax in fig.axes] == ["Training loss", "Training and validation widgets"]
    assert best_marker(fig.axes[0]) is None  # no validation
    assert best_marker(fig.axes[1]) is None  # direction unknown
    many = {name: [1.0, 2.0] for name in ["loss", "mae", "mse", "auc", "precision"]}
    many.update({f"val_{name}": [2.0, 1.0] for name in list(many)})
    fig = plot_history(many)
    assert len(fig.axes) == 5
    assert [list(best_marker(ax).get_xdata()) for ax in fig.axes] == [[2], [2], [2], [1], [1]]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plot")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile("sgd", "binary_crossentropy", metrics=["accuracy"])
    csv_path = folder / "log.csv"
    history = model.fit(
        x, y, validation_data=(x, y), epochs=4, verbose=0,
        callbacks=[CurveSmoothing(), keras.callbacks.CSVLogger(str(csv_path))],
    )
    json_path = save_history(history, folder / "history.json")
    return history, json_path, csv_path


@pytest.mark.parametrize("source", ["history", "dict", "json", "csv"])
def test_history_dict_json_and_csv_give_the_same_figure(fitted, source):
    history, json_path, csv_path = fitted
    argument = {
        "history": history,
        "dict": history.history,
        "json": json_path,
        "csv": str(csv_path),
    }[source]
    fig = plot_history(argument)
    assert [ax.get_title() for ax in fig.axes] == [
        "Training and validation accuracy",
        "Training and validation loss",
    ]
    for ax, name in zip(fig.axes, ["accuracy", "loss"]):
        check_panel(ax, name, history.history)
    best = int(np.argmin(history.history["val_loss"])) + 1
    assert list(best_marker(fig.axes[1]).get_xdata()) == [best]


def test_validation_freq_history_places_validation_epochs():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 2)).astype("float32")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    history = model.fit(x, x[:, :1], validation_data=(x, x[:, :1]), epochs=5, validation_freq=2, verbose=0)
    assert len(history.history["val_loss"]) == 2
    fig = plot_history(history, smoothing=0.5)  # 2 values in 5 epochs: only freq 2 fits
    lines = lines_by_label(fig.axes[0])
    np.testing.assert_array_equal(lines["Validation loss"].get_xdata(), [2, 4])
    np.testing.assert_array_equal(lines["Validation loss (smoothed)"].get_xdata(), [2, 4])
    np.testing.assert_array_equal(
        lines["Validation loss (smoothed)"].get_ydata(), smooth_curve(history.history["val_loss"], 0.5)
    )


def test_shorter_validation_needs_validation_freq_when_ambiguous():
    history = {"loss": [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4], "val_loss": [0.65]}
    with pytest.raises(ValueError, match=r"could be any of \[4, 5, 6, 7\]"):
        plot_history(history)
    fig = plot_history(history, validation_freq=5)
    assert list(lines_by_label(fig.axes[0])["Validation loss"].get_xdata()) == [5]
    fig = plot_history(history, validation_freq=[3])
    assert list(lines_by_label(fig.axes[0])["Validation loss"].get_xdata()) == [3]
    with pytest.raises(ValueError, match="gives 3 validation epochs"):
        plot_history(history, validation_freq=2)
    with pytest.raises(ValueError, match="must be None, a positive int"):
        plot_history(history, validation_freq="2")


def test_resumed_history_keeps_epoch_numbers():
    x = np.zeros((4, 2), dtype="float32")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    history = model.fit(x, x[:, :1], epochs=5, initial_epoch=3, verbose=0)
    fig = plot_history(history)
    np.testing.assert_array_equal(lines_by_label(fig.axes[0])["Training loss"].get_xdata(), [4, 5])


def test_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="must be the History"):
        plot_history([0.5, 0.4])
    with pytest.raises(FileNotFoundError):
        plot_history(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="no metric to plot"):
        plot_history({"learning_rate": [0.1], "loss_smoothed": [1.0]})
    with pytest.raises(ValueError, match=r"`smoothing` must be in \[0, 1\)"):
        plot_history(HISTORY, smoothing=1.0)
    with pytest.raises(ValueError, match="`figsize` must be"):
        plot_history(HISTORY, figsize=(0, 3))
    with pytest.raises(ValueError, match="no int validation_freq gives that many epochs"):
        plot_history({"loss": [1.0, 2.0, 3.0, 4.0, 5.0], "val_loss": [1.0, 2.0, 3.0, 4.0]})


def test_direction_comes_from_the_models_metrics():
    from keras_smalldata.training._directions import metric_direction

    x = np.random.default_rng(2).normal(size=(8, 2)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(
        "sgd", "binary_crossentropy",
        metrics=[keras.metrics.BinaryAccuracy(name="widgets"), keras.metrics.FalseNegatives(name="gadgets")],
    )
    history = model.fit(x, y, validation_data=(x, y), epochs=2, verbose=0)
    assert metric_direction("val_widgets") is None  # the name says nothing
    assert metric_direction("val_widgets", model=model) == "max"
    assert metric_direction("gadgets", model=model) is None  # no declared direction
    assert metric_direction("val_loss_smoothed") == "min"
    assert metric_direction("val_sparse_categorical_accuracy") == "max"
    # plot_history asks the History's model.
    fig = plot_history(history, metrics=["widgets"])
    assert best_marker(fig.axes[0]) is not None
    fig = plot_history(history.history, metrics=["widgets"])
    assert best_marker(fig.axes[0]) is None
