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


def best_marks(ax):
    """(x of the dashed line, [(x, y) of the stars]) of the best-epoch mark, or None."""
    marks = [a for a in ax.get_lines() if a.get_gid() == "best_epoch"]
    if not marks:
        return None
    dashed = [a for a in marks if a.get_linestyle() == "--"]
    stars = [a for a in marks if a.get_marker() == "*"]
    assert len(dashed) == 1 and len(marks) == 1 + len(stars)
    x = list(dashed[0].get_xdata())
    assert x[0] == x[1]  # a vertical line
    return x[0], [(float(s.get_xdata()[0]), float(s.get_ydata()[0])) for s in stars]


def legend_texts(fig):
    assert len(fig.legends) == 1
    return [text.get_text() for text in fig.legends[0].get_texts()]


def legend_title(fig):
    return fig.legends[0].get_title().get_text()


def check_panel(ax, name, history, factor=0.8, debias=True):
    lines = lines_by_label(ax)
    epochs = np.arange(1, len(history[name]) + 1)
    raw = lines[f"Training {name}"]
    assert raw.get_linestyle() == "None" and raw.get_marker() == "o"
    np.testing.assert_array_equal(raw.get_xdata(), epochs)
    np.testing.assert_array_equal(raw.get_ydata(), history[name])
    smoothed = lines[f"Training {name} (smoothed)"]
    assert smoothed.get_linestyle() == "-" and smoothed.get_marker() == "None"
    np.testing.assert_array_equal(smoothed.get_xdata(), epochs)
    np.testing.assert_allclose(
        smoothed.get_ydata(), smooth_curve(history[name], factor, debias=debias), rtol=1e-12
    )
    val = lines[f"Validation {name}"]
    np.testing.assert_array_equal(val.get_ydata(), history[f"val_{name}"])
    assert raw.get_color() != val.get_color()
    assert lines[f"Validation {name} (smoothed)"].get_color() == val.get_color()


def test_dict_panels_titles_lines_and_one_best_epoch():
    fig = plot_history(HISTORY)
    assert isinstance(fig, Figure)
    assert [ax.get_title() for ax in fig.axes] == [
        "Training and validation accuracy",
        "Training and validation loss",
    ]
    assert [ax.get_xlabel() for ax in fig.axes] == ["Epoch", "Epoch"]
    for ax, name in zip(fig.axes, ["accuracy", "loss"]):
        check_panel(ax, name, HISTORY)
    # One criterion for the whole figure: the lowest val_loss, 0.5 at epoch 4,
    # marked in both panels, with each panel's validation value at epoch 4.
    assert best_marks(fig.axes[0]) == (4, [(4.0, 0.6875)])
    assert best_marks(fig.axes[1]) == (4, [(4.0, 0.5)])
    assert legend_texts(fig) == [
        "Training",
        "Training, smoothed",
        "Validation",
        "Validation, smoothed",
        "Best epoch 4: lowest val_loss (0.5)",
    ]
    assert legend_title(fig) == "Lines: factor 0.8, bias-corrected"


def test_monitor_and_mode_choose_the_best_epoch():
    # val_accuracy: 0.75 at epochs 2 and 5: the first, as ModelCheckpoint keeps.
    fig = plot_history(HISTORY, monitor="val_accuracy")
    assert [best_marks(ax) for ax in fig.axes] == [(2, [(2.0, 0.75)]), (2, [(2.0, 0.55)])]
    assert legend_texts(fig)[-1] == "Best epoch 2: highest val_accuracy (0.75)"
    # The smoothed key CurveSmoothing logged: the epoch EarlyStopping would restore.
    fig = plot_history(HISTORY, monitor="val_loss_smoothed")
    assert best_marks(fig.axes[1])[0] == 5
    fig = plot_history(HISTORY, monitor="val_loss", mode="max")
    assert best_marks(fig.axes[1]) == (1, [(1.0, 0.8)])
    fig = plot_history(HISTORY, monitor=None)
    assert [best_marks(ax) for ax in fig.axes] == [None, None]
    assert not any(text.startswith("Best") for text in legend_texts(fig))
    with pytest.raises(ValueError, match=r"Did you mean 'val_accuracy'\?"):
        plot_history(HISTORY, monitor="val_acc")
    with pytest.raises(ValueError, match="`mode` must be one of"):
        plot_history(HISTORY, mode="lowest")


def test_the_legend_is_outside_every_panel():
    many = {name: [1.0, 2.0, 1.5] for name in ["loss", "mae", "mse", "auc", "precision"]}
    many.update({f"val_{name}": [2.0, 1.0, 1.2] for name in list(many)})
    for history, kwargs in [(HISTORY, {}), (many, {}), (HISTORY, {"metrics": "loss"}),
                            (HISTORY, {"figsize": (3, 2.5)})]:
        fig = plot_history(history, **kwargs)
        fig.canvas.draw()
        legend_box = fig.legends[0].get_window_extent()
        assert all(ax.get_legend() is None for ax in fig.axes)
        for ax in fig.axes:
            assert not legend_box.overlaps(ax.get_window_extent())
            # and no data point of any panel lies under it
            for line in ax.get_lines():
                xy = line.get_transform().transform(np.column_stack([line.get_xdata(), line.get_ydata()]))
                assert not any(legend_box.contains(x, y) for x, y in xy)
        # Inside the figure: nothing is cut off.
        figure_box = fig.bbox
        assert figure_box.x0 <= legend_box.x0 and legend_box.x1 <= figure_box.x1
        assert figure_box.y0 <= legend_box.y0 and legend_box.y1 <= figure_box.y1


def test_debias_false_draws_the_classic_average():
    fig = plot_history(HISTORY, debias=False)
    for ax, name in zip(fig.axes, ["accuracy", "loss"]):
        check_panel(ax, name, HISTORY, debias=False)
    assert legend_title(fig) == "Lines: factor 0.8, classic"


def test_with_few_epochs_the_default_line_stays_near_the_points():
    # A loss that starts high: the classic average stays pulled toward 2.0.
    history = {"loss": [2.0, 0.5, 0.45, 0.4], "val_loss": [2.0, 0.6, 0.5, 0.45]}
    line = lines_by_label(plot_history(history).axes[0])["Validation loss (smoothed)"]
    classic = smooth_curve(history["val_loss"], 0.8)
    assert line.get_ydata()[-1] < classic[-1]
    # At epoch 4 the classic line (1.27) is above every raw point since epoch 2.
    assert classic[-1] > max(history["val_loss"][1:])
    assert line.get_ydata()[-1] == pytest.approx(smooth_curve(history["val_loss"], 0.8, debias=True)[-1])


def test_metrics_selection_order_and_typo():
    fig = plot_history(HISTORY, metrics=["loss", "val_accuracy"])
    assert [ax.get_title() for ax in fig.axes] == [
        "Training and validation loss",
        "Training and validation accuracy",
    ]
    assert len(plot_history(HISTORY, metrics="loss").axes) == 1
    with pytest.raises(ValueError, match=r"'los' is not in the history.*Did you mean 'loss'\?"):
        plot_history(HISTORY, metrics=["los"])
    with pytest.raises(ValueError, match="'learning_rate' is not in the history"):
        plot_history(HISTORY, metrics=["learning_rate"])


def test_factor_none_and_figsize():
    fig = plot_history(HISTORY, factor=None, figsize=(8, 3))
    assert tuple(fig.get_size_inches()) == (8, 3)
    labels = set(lines_by_label(fig.axes[1]))
    assert not any("smoothed" in label for label in labels)
    assert not any("smoothed" in text for text in legend_texts(fig))
    assert legend_title(fig) == ""
    fig = plot_history(HISTORY, factor=0.0)
    smoothed = lines_by_label(fig.axes[1])["Training loss (smoothed)"]
    np.testing.assert_array_equal(smoothed.get_ydata(), HISTORY["loss"])
    fig = plot_history(HISTORY, factor=0.5)
    check_panel(fig.axes[1], "loss", HISTORY, factor=0.5)


def test_nan_values_are_left_out():
    history = {"loss": [1.0, math.nan, 0.5, 0.25], "val_loss": [0.5, 0.1, math.nan, 0.75]}
    history["val_loss"][1] = math.inf  # diverged epoch
    fig = plot_history(history, factor=0.5, debias=False)
    lines = lines_by_label(fig.axes[0])
    np.testing.assert_array_equal(lines["Training loss"].get_xdata(), [1, 3, 4])
    np.testing.assert_array_equal(lines["Training loss (smoothed)"].get_xdata(), [1, 3, 4])
    np.testing.assert_array_equal(lines["Training loss (smoothed)"].get_ydata(), [1.0, 0.75, 0.5])
    np.testing.assert_array_equal(lines["Validation loss"].get_xdata(), [1, 4])
    assert best_marks(fig.axes[0]) == (1, [(1.0, 0.5)])
    all_nan = {"loss": [1.0, 0.5], "val_loss": [math.nan, math.nan]}
    assert best_marks(plot_history(all_nan).axes[0]) is None


def test_training_only_unknown_direction_and_many_panels():
    fig = plot_history({"loss": [1.0, 0.5], "widgets": [3.0, 4.0], "val_widgets": [1.0, 2.0]})
    assert [ax.get_title() for ax in fig.axes] == ["Training loss", "Training and validation widgets"]
    # No val_loss: the default criterion has nothing to choose from.
    assert [best_marks(ax) for ax in fig.axes] == [None, None]
    with pytest.raises(ValueError, match="cannot tell whether 'val_widgets' is better low or high"):
        plot_history({"widgets": [3.0, 4.0], "val_widgets": [1.0, 2.0]}, monitor="val_widgets")
    many = {name: [1.0, 2.0] for name in ["loss", "mae", "mse", "auc", "precision"]}
    many.update({f"val_{name}": [2.0, 1.0] for name in list(many)})
    fig = plot_history(many)
    assert len(fig.axes) == 5
    assert [best_marks(ax) for ax in fig.axes] == [(2, [(2.0, 1.0)])] * 5


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
    assert [best_marks(ax)[0] for ax in fig.axes] == [best, best]


def test_validation_freq_history_places_validation_epochs():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 2)).astype("float32")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    history = model.fit(x, x[:, :1], validation_data=(x, x[:, :1]), epochs=5, validation_freq=2, verbose=0)
    assert len(history.history["val_loss"]) == 2
    fig = plot_history(history, factor=0.5)  # 2 values in 5 epochs: only freq 2 fits
    lines = lines_by_label(fig.axes[0])
    np.testing.assert_array_equal(lines["Validation loss"].get_xdata(), [2, 4])
    np.testing.assert_array_equal(lines["Validation loss (smoothed)"].get_xdata(), [2, 4])
    np.testing.assert_array_equal(
        lines["Validation loss (smoothed)"].get_ydata(),
        smooth_curve(history.history["val_loss"], 0.5, debias=True),
    )
    best = 2 * (int(np.argmin(history.history["val_loss"])) + 1)
    assert best_marks(fig.axes[0])[0] == best


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
    with pytest.raises(ValueError, match=r"`factor` must be a number in \[0, 1\)"):
        plot_history(HISTORY, factor=1.0)
    with pytest.raises(TypeError, match="`debias` must be True or False"):
        plot_history(HISTORY, debias=None)
    with pytest.raises(TypeError, match="`monitor` must be a history key"):
        plot_history(HISTORY, monitor=["val_loss"])
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
        metrics=[
            keras.metrics.BinaryAccuracy(name="widgets"),
            keras.metrics.FalseNegatives(name="gadgets"),
            keras.metrics.MeanSquaredError(name="gizmos"),
        ],
    )
    history = model.fit(x, y, validation_data=(x, y), epochs=2, verbose=0)
    assert metric_direction("val_widgets") is None  # the name says nothing
    assert metric_direction("val_widgets", model=model) == "max"
    assert metric_direction("gadgets", model=model) is None  # a count: no direction
    assert metric_direction("val_gizmos", model=model) == "min"
    assert metric_direction("val_loss_smoothed") == "min"
    assert metric_direction("val_sparse_categorical_accuracy") == "max"
    # plot_history asks the History's model.
    fig = plot_history(history, metrics=["widgets"], monitor="val_widgets")
    best = int(np.argmax(history.history["val_widgets"])) + 1
    assert best_marks(fig.axes[0])[0] == best
    with pytest.raises(ValueError, match="Pass mode='min'"):
        plot_history(history.history, metrics=["widgets"], monitor="val_widgets")


def test_bounded_metrics_stop_at_one_and_losses_keep_their_margin():
    history = {
        "loss": [0.9, 0.5, 0.2],
        "val_loss": [1.0, 0.7, 0.6],
        "accuracy": [0.5, 0.9, 1.0],
        "val_accuracy": [0.4, 0.8, 0.975],
    }
    fig = plot_history(history)
    loss_axis, accuracy_axis = fig.axes[:2]
    assert accuracy_axis.get_ylabel() == "accuracy"
    low, high = accuracy_axis.get_ylim()
    assert high == 1.0 and 0.0 <= low < 0.4
    # A loss is not bounded: matplotlib's margin stays above its largest value.
    assert loss_axis.get_ylabel() == "loss" and loss_axis.get_ylim()[1] > 1.0
