"""Tests for the `CurveSmoothing` callback and `check_callbacks`."""

import csv
import math
import re
import warnings

import keras
import numpy as np
import pytest

from keras_smalldata.training import CurveSmoothing, check_callbacks, smooth_curve

# A validation loss with a trend and noise, in binary fractions so that the
# smoothed values below are exact. EarlyStopping(patience=2):
# - on the raw values: best 0.5 at epoch 1, then 0.625 and 0.5625 are no
#   better -> stops at the end of epoch 3 (4 epochs run);
# - on the average with factor 0.5: 1, 0.75, 0.6875, 0.625 (improving while
#   the raw values are noisy), then 0.6875, 0.78125 -> stops at epoch 5.
SCRIPTED_VAL_LOSS = [1.0, 0.5, 0.625, 0.5625, 0.75, 0.875, 1.0, 1.0]
SMOOTHED_VAL_LOSS = [1.0, 0.75, 0.6875, 0.625, 0.6875, 0.78125]


class ScriptedValLoss(keras.callbacks.Callback):
    """Replaces the measured `val_loss` with a fixed sequence (deterministic noise)."""

    def __init__(self, values):
        super().__init__()
        self.values = values

    def on_epoch_end(self, epoch, logs=None):
        logs["val_loss"] = self.values[epoch]


@pytest.fixture(scope="module")
def tiny():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile("sgd", "binary_crossentropy", metrics=["accuracy"])
    return model, x, y


def fit(tiny, callbacks, epochs=8, **kwargs):
    model, x, y = tiny
    kwargs.setdefault("validation_data", (x, y))
    return model.fit(x, y, epochs=epochs, batch_size=16, verbose=0, callbacks=callbacks, **kwargs)


def handed_monitors(smoother) -> list[str]:
    """The monitors `check_callbacks` handed to ``smoother``, as its hooks name them.

    A new fit starts, an epoch ends with none of their keys (the training
    monitors are named) and the fit ends without validation (the
    validation monitors are named).
    """
    smoother.on_train_begin()
    message = ""
    try:
        smoother.on_epoch_end(0, {})
    except ValueError as error:
        message = str(error)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        smoother.on_train_end()
    message += " ".join(str(warning.message) for warning in caught)
    return sorted(set(re.findall(r"\w+\(monitor='\w+'\)", message)))


def test_early_stopping_on_smoothed_key_stops_later_than_on_raw(tiny):
    raw_stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=2)
    raw_history = fit(tiny, [ScriptedValLoss(SCRIPTED_VAL_LOSS), raw_stop])
    assert raw_history.epoch == [0, 1, 2, 3]
    assert raw_stop.best_epoch == 1

    smooth_stop = keras.callbacks.EarlyStopping(
        monitor="val_loss_smoothed", mode="min", patience=2
    )
    history = fit(
        tiny,
        [ScriptedValLoss(SCRIPTED_VAL_LOSS), CurveSmoothing(factor=0.5, debias=False), smooth_stop],
    )
    assert history.epoch == [0, 1, 2, 3, 4, 5]
    assert smooth_stop.stopped_epoch == 5
    # The lag: the smoothed best comes 2 epochs after the raw best.
    assert smooth_stop.best_epoch == 3
    assert history.history["val_loss"] == SCRIPTED_VAL_LOSS[:6]
    assert history.history["val_loss_smoothed"] == SMOOTHED_VAL_LOSS


def test_history_and_csvlogger_get_the_smoothed_keys(tiny, tmp_path):
    log_path = tmp_path / "log.csv"
    history = fit(
        tiny,
        [CurveSmoothing(factor=0.8), keras.callbacks.CSVLogger(str(log_path))],
        epochs=3,
    )
    keys = set(history.history)
    assert keys == {
        "accuracy", "loss", "val_accuracy", "val_loss",
        "accuracy_smoothed", "loss_smoothed", "val_accuracy_smoothed", "val_loss_smoothed",
    }
    for key in ("accuracy", "loss", "val_accuracy", "val_loss"):
        assert len(history.history[f"{key}_smoothed"]) == 3
        # The default is the bias-corrected average, the one plot_history draws.
        np.testing.assert_array_equal(
            history.history[f"{key}_smoothed"],
            smooth_curve(history.history[key], 0.8, debias=True),
        )
    with open(log_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3
    assert "val_loss_smoothed" in rows[0] and "loss_smoothed" in rows[0]
    assert [float(r["val_loss_smoothed"]) for r in rows] == history.history["val_loss_smoothed"]


def test_validation_freq_two_skips_missing_epochs(tiny, tmp_path):
    log_path = tmp_path / "log.csv"
    history = fit(
        tiny,
        [CurveSmoothing(factor=0.5, debias=True), keras.callbacks.CSVLogger(str(log_path))],
        epochs=5,
        validation_freq=2,
    )
    h = history.history
    assert len(h["loss_smoothed"]) == 5
    assert len(h["val_loss"]) == len(h["val_loss_smoothed"]) == 2
    # The validation average advances once per evaluation, not per epoch.
    np.testing.assert_array_equal(h["val_loss_smoothed"], smooth_curve(h["val_loss"], 0.5, debias=True))
    np.testing.assert_array_equal(h["loss_smoothed"], smooth_curve(h["loss"], 0.5, debias=True))
    with open(log_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["val_loss_smoothed"] for r in rows[::2]] == ["NA", "NA", "NA"]
    assert [float(r["val_loss_smoothed"]) for r in rows[1::2]] == h["val_loss_smoothed"]


def test_metrics_selection_and_val_prefix():
    smoother = CurveSmoothing(factor=0.5, metrics=["loss", "val_accuracy"], debias=False)
    smoother.on_train_begin()
    logs = {"loss": 1.0, "accuracy": 0.5, "val_loss": 2.0, "val_accuracy": 0.25, "learning_rate": 0.1}
    smoother.on_epoch_end(0, logs)
    assert set(logs) == {
        "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate",
        "loss_smoothed", "val_loss_smoothed", "val_accuracy_smoothed",
    }
    smoother.on_epoch_end(1, logs := {"loss": 0.0, "accuracy": 0.5, "val_loss": 0.0, "val_accuracy": 0.75})
    assert logs["loss_smoothed"] == 0.5
    assert logs["val_loss_smoothed"] == 1.0
    assert logs["val_accuracy_smoothed"] == 0.5
    assert smoother.covers("val_loss") and smoother.covers("loss")
    assert not smoother.covers("accuracy") and not smoother.covers("loss_smoothed")


def test_default_smooths_every_number_but_learning_rate_and_smoothed_keys():
    smoother = CurveSmoothing(factor=0.5)
    smoother.on_train_begin()
    logs = {
        "loss": np.float32(1.0),
        "val_loss": np.array(3.0),
        "learning_rate": 0.01,
        "other_smoothed": 4.0,
        "per_class": [0.1, 0.2],
        "name": "text",
    }
    smoother.on_epoch_end(0, logs)
    assert logs["loss_smoothed"] == 1.0 and isinstance(logs["loss_smoothed"], float)
    assert logs["val_loss_smoothed"] == 3.0
    assert "learning_rate_smoothed" not in logs
    assert "other_smoothed_smoothed" not in logs
    assert "per_class_smoothed" not in logs and "name_smoothed" not in logs


def test_nan_value_gives_nan_and_does_not_poison():
    smoother = CurveSmoothing(factor=0.5, debias=False)
    smoother.on_train_begin()
    written = []
    for epoch, value in enumerate([4.0, math.nan, 0.0, math.inf, 2.0]):
        logs = {"val_loss": value}
        smoother.on_epoch_end(epoch, logs)
        written.append(logs["val_loss_smoothed"])
    np.testing.assert_array_equal(written, [4.0, np.nan, 2.0, np.nan, 2.0])


def test_state_is_reset_on_train_begin():
    smoother = CurveSmoothing(factor=0.5)
    for start in (10.0, 2.0):
        smoother.on_train_begin()
        logs = {"loss": start}
        smoother.on_epoch_end(0, logs)
        assert logs["loss_smoothed"] == start


def test_only_epoch_hooks_so_async_dispatch_stays_on():
    # Keras dispatches batch hooks asynchronously unless a callback overrides
    # one of them (CallbackList._configure_async_dispatch).
    for hook in ("on_train_batch_end", "on_batch_end", "on_test_batch_end", "on_predict_batch_end"):
        assert getattr(CurveSmoothing, hook) is getattr(keras.callbacks.Callback, hook)


def test_misspelt_metric_raises_with_suggestion():
    smoother = CurveSmoothing(metrics=["acc"])
    smoother.on_train_begin()
    with pytest.raises(ValueError, match=r"'acc' is not in the epoch logs\. Did you mean 'accuracy'\?"):
        smoother.on_epoch_end(0, {"accuracy": 0.5, "loss": 1.0})


def test_validation_metric_never_seen_warns_at_train_end():
    smoother = CurveSmoothing(metrics=["val_loss"])
    smoother.on_train_begin()
    smoother.on_epoch_end(0, {"loss": 1.0})
    with pytest.warns(UserWarning, match=r"never smoothed \['val_loss'\]"):
        smoother.on_train_end()


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"factor": 1.0}, ValueError, r"`factor` must be a number in \[0, 1\).*Received: factor=1.0"),
        ({"factor": "0.8"}, TypeError, "`factor` must be a number"),
        ({"debias": "yes"}, TypeError, "`debias` must be True or False"),
        ({"metrics": []}, ValueError, "`metrics` is empty"),
        ({"metrics": [1]}, TypeError, "metric names"),
        ({"metrics": 3}, TypeError, "`metrics` must be None"),
        ({"metrics": ["val_loss_smoothed"]}, ValueError, "Use 'val_loss'"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        CurveSmoothing(**kwargs)


def test_string_metric_and_repr():
    smoother = CurveSmoothing(0.6, metrics="val_loss", debias=True)
    assert smoother.metrics == ("val_loss",)
    assert repr(smoother) == "CurveSmoothing(factor=0.6, metrics=['val_loss'], debias=True)"


# --- misuse detection: check_callbacks before fit ---------------------------


def test_default_is_the_bias_corrected_average():
    smoother = CurveSmoothing(factor=0.5)
    assert smoother.debias is True
    smoother.on_train_begin()
    written = []
    for epoch, value in enumerate([4.0, 0.0, 2.0]):
        logs = {"loss": value}
        smoother.on_epoch_end(epoch, logs)
        written.append(logs["loss_smoothed"])
    # a = .5*4 = 2 -> 2/.5 = 4; a = 1 -> 1/.75; a = 1.5 -> 1.5/.875 (hand-computed).
    np.testing.assert_allclose(written, [4.0, 4 / 3, 12 / 7], rtol=1e-15)


def test_check_callbacks_refuses_monitor_placed_before_the_smoother(tiny):
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_loss_smoothed", mode="min"),
        CurveSmoothing(),
    ]
    with pytest.raises(ValueError, match="comes before the CurveSmoothing"):
        fit(tiny, check_callbacks(callbacks), epochs=1)


def test_check_callbacks_refuses_mode_auto_on_smoothed_key():
    callbacks = [CurveSmoothing(), keras.callbacks.ReduceLROnPlateau(monitor="val_loss_smoothed")]
    with pytest.raises(ValueError, match="mode='auto'.*Pass mode='min'"):
        check_callbacks(callbacks)


@pytest.mark.parametrize(
    "monitor, mode, direction",
    [("val_accuracy_smoothed", "min", "max"), ("loss_smoothed", "max", "min")],
)
def test_check_callbacks_refuses_a_mode_against_the_metric(monitor, mode, direction):
    callbacks = [CurveSmoothing(), keras.callbacks.EarlyStopping(monitor=monitor, mode=mode)]
    with pytest.raises(ValueError, match=f"has mode='{mode}'.*would keep the worst epochs. Pass mode='{direction}'"):
        check_callbacks(callbacks)


def test_check_callbacks_refuses_a_checkpoint_saving_every_few_batches():
    checkpoint = keras.callbacks.ModelCheckpoint(
        "m.keras", monitor="val_loss_smoothed", mode="min", save_best_only=True, save_freq=5
    )
    with pytest.raises(ValueError, match="has save_freq=5: it reads its monitor at the end of batches"):
        check_callbacks([CurveSmoothing(), checkpoint])


def test_check_callbacks_warns_when_csvlogger_comes_first(tmp_path):
    callbacks = [keras.callbacks.CSVLogger(str(tmp_path / "log.csv")), CurveSmoothing()]
    with pytest.warns(UserWarning, match="CSVLogger comes before CurveSmoothing"):
        check_callbacks(callbacks)


def test_check_callbacks_finds_a_missing_smoother():
    stop = keras.callbacks.EarlyStopping(monitor="val_loss_smoothed", mode="min")
    with pytest.raises(ValueError, match="there is no CurveSmoothing in the callbacks"):
        check_callbacks([stop])


def test_check_callbacks_finds_a_smoother_for_other_metrics():
    callbacks = [
        CurveSmoothing(metrics=["accuracy"]),
        keras.callbacks.ModelCheckpoint("m.keras", monitor="val_loss_smoothed", mode="min", save_best_only=True),
    ]
    with pytest.raises(ValueError, match="no CurveSmoothing in the list smooths 'val_loss'"):
        check_callbacks(callbacks)


def test_check_callbacks_lists_every_problem():
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_accuracy_smoothed"),
        CurveSmoothing(),
    ]
    with pytest.raises(ValueError) as info:
        check_callbacks(callbacks)
    message = str(info.value)
    assert "comes before" in message and "Pass mode='max'" in message


def test_check_callbacks_accepts_a_good_list_and_returns_it_flat():
    smoother = CurveSmoothing(metrics=["val_loss"])
    stop = keras.callbacks.EarlyStopping(monitor="val_loss_smoothed", mode="min")
    keep = keras.callbacks.ModelCheckpoint("m.keras", monitor="val_loss", save_best_only=True)
    logger = keras.callbacks.CSVLogger("log.csv")
    # Saving every epoch does not read the monitor.
    every = keras.callbacks.ModelCheckpoint("e.keras", monitor="loss_smoothed", save_best_only=False)
    callbacks = [smoother, [stop], keep, (logger, every)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        checked = check_callbacks(callbacks)
        assert checked == [smoother, stop, keep, logger, every]
        assert callbacks[1] == [stop]  # The argument is left as it was.
        assert check_callbacks(None) == []
        # Keras builds a CallbackList from the flat list on every backend.
        callback_list = keras.callbacks.CallbackList(checked)
        assert check_callbacks(callback_list) is callback_list
    # Only the monitor of a smoothed key is handed to the smoother.
    assert handed_monitors(smoother) == ["EarlyStopping(monitor='val_loss_smoothed')"]


def test_check_callbacks_bad_input():
    with pytest.raises(TypeError, match="must be a list of Keras callbacks"):
        check_callbacks("EarlyStopping")
    with pytest.raises(TypeError, match="must hold keras.callbacks.Callback"):
        check_callbacks([CurveSmoothing(), "EarlyStopping"])


# --- misuse detection: keys that only exist once training runs ---------------


class EpochRecorder(keras.callbacks.Callback):
    """Records the epochs whose end it sees (it comes last in the list)."""

    def __init__(self):
        super().__init__()
        self.ended = []

    def on_epoch_end(self, epoch, logs=None):
        self.ended.append(epoch)


def test_mistyped_smoothed_key_raises_at_the_first_epoch_end(tiny):
    # The case: "acc" is the Keras 2 name, the metric is "accuracy".
    recorder = EpochRecorder()
    stop = keras.callbacks.EarlyStopping(monitor="val_acc_smoothed", mode="max", patience=2)
    callbacks = check_callbacks([CurveSmoothing(), stop, recorder])  # passes: names are unknown yet
    with pytest.raises(ValueError) as info:
        fit(tiny, callbacks, epochs=5)
    message = str(info.value)
    assert "EarlyStopping(monitor='val_acc_smoothed') can never see its key" in message
    assert "its raw key 'val_acc' is not in the logs" in message
    assert "Did you mean 'val_accuracy_smoothed'" in message
    assert recorder.ended == []  # Stopped at the end of the first epoch, before the others ran.


def test_mistyped_training_key_raises_too(tiny):
    callbacks = check_callbacks([
        CurveSmoothing(),
        keras.callbacks.ReduceLROnPlateau(monitor="los_smoothed", mode="min"),
    ])
    with pytest.raises(ValueError, match="'los' is not in the logs. Did you mean 'loss_smoothed'"):
        fit(tiny, callbacks, epochs=2)


@pytest.mark.filterwarnings("ignore:Early stopping conditioned on metric")
def test_validation_keys_are_checked_at_the_first_epoch_with_validation(tiny):
    recorder = EpochRecorder()
    callbacks = check_callbacks([
        CurveSmoothing(),
        keras.callbacks.EarlyStopping(monitor="val_acc_smoothed", mode="max"),
        recorder,
    ])
    with pytest.raises(ValueError, match="val_acc_smoothed"):
        fit(tiny, callbacks, epochs=4, validation_freq=2)
    assert recorder.ended == [0]  # epoch 0 had no validation; epoch 1 raised


def test_a_non_scalar_metric_is_named_as_such():
    smoother = CurveSmoothing()
    stop = keras.callbacks.EarlyStopping(monitor="per_class_smoothed", mode="max")
    check_callbacks([smoother, stop])
    smoother.on_train_begin()
    with pytest.raises(ValueError, match="'per_class' is in the logs but is not a single number"):
        smoother.on_epoch_end(0, {"loss": 1.0, "per_class": [0.5, 0.25]})


def test_a_good_list_trains_on_every_backend(tiny):
    # Nested lists are flattened, which Keras needs on JAX and PyTorch.
    stop = keras.callbacks.EarlyStopping(monitor="val_accuracy_smoothed", mode="max", patience=50)
    history = fit(tiny, check_callbacks([CurveSmoothing(metrics="accuracy"), [stop]]), epochs=3)
    assert len(history.history["val_accuracy_smoothed"]) == 3
    assert stop.stopped_epoch == 0


@pytest.mark.filterwarnings("ignore:Early stopping conditioned on metric")
def test_validation_monitor_without_validation_warns_at_train_end(tiny):
    callbacks = check_callbacks([
        CurveSmoothing(),
        keras.callbacks.EarlyStopping(monitor="val_loss_smoothed", mode="min"),
    ])
    with pytest.warns(UserWarning, match=r"EarlyStopping\(monitor='val_loss_smoothed'\) never had a value"):
        fit(tiny, callbacks, epochs=2, validation_data=None)


def test_the_registration_only_checks_monitors_of_the_running_fit(tiny):
    smoother = CurveSmoothing()
    check_callbacks([smoother, keras.callbacks.EarlyStopping(monitor="val_acc_smoothed", mode="max")])
    # The same smoother in another list, not checked again: the stale monitor
    # is not part of this fit and must not stop it.
    good = keras.callbacks.EarlyStopping(monitor="val_loss_smoothed", mode="min", patience=50)
    history = fit(tiny, [smoother, good], epochs=2)
    assert len(history.history["val_loss_smoothed"]) == 2
    # Checking the new list replaces the registration.
    check_callbacks([smoother, good])
    assert handed_monitors(smoother) == ["EarlyStopping(monitor='val_loss_smoothed')"]


def test_only_the_first_smoother_checks(tiny):
    first, second = CurveSmoothing(metrics="loss"), CurveSmoothing(metrics="accuracy")
    stop = keras.callbacks.EarlyStopping(monitor="val_accuracy_smoothed", mode="max")
    check_callbacks([first, second, stop])
    assert handed_monitors(first) == ["EarlyStopping(monitor='val_accuracy_smoothed')"]
    assert handed_monitors(second) == []


def test_misspelt_validation_metric_raises_when_validation_runs():
    smoother = CurveSmoothing(metrics=["val_acc"])
    smoother.on_train_begin()
    smoother.on_epoch_end(0, {"loss": 1.0})  # no validation yet: nothing to say
    with pytest.raises(ValueError, match="'val_acc' is not in the epoch logs. Did you mean 'val_accuracy'"):
        smoother.on_epoch_end(1, {"loss": 1.0, "val_loss": 1.0, "val_accuracy": 0.5})


def test_tensorboard_routes_smoothed_validation_keys_by_prefix(tiny, tmp_path):
    pytest.importorskip("tensorboard", reason="the TensorBoard callback needs tensorboard")
    import tensorflow as tf

    fit(tiny, [CurveSmoothing(), keras.callbacks.TensorBoard(str(tmp_path))], epochs=2)

    def tags(run):
        found = set()
        for event_file in (tmp_path / run).glob("events.out.tfevents.*"):
            for event in tf.compat.v1.train.summary_iterator(str(event_file)):
                found.update(value.tag for value in event.summary.value)
        return found

    assert {"epoch_loss", "epoch_loss_smoothed"} <= tags("train")
    assert {"epoch_loss", "epoch_loss_smoothed"} <= tags("validation")
    assert not any(tag.startswith("epoch_val_") for tag in tags("train"))
