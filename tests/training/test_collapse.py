import warnings

import keras
import numpy as np
import pytest

from keras_smalldata.training.collapse import (
    CollapseCheck,
    TrainingCollapseWarning,
    predicted_classes,
)


def _constant_model(outputs):
    """A model whose output is a fixed row, whatever the picture (bias only)."""
    outputs = np.asarray(outputs, dtype="float32")
    inputs = keras.Input((4, 4, 1))
    flat = keras.layers.Flatten()(inputs)
    dense = keras.layers.Dense(len(outputs), kernel_initializer="zeros")
    model = keras.Model(inputs, dense(flat))
    dense.bias.assign(outputs)
    return model


def _check(model, check, logs=None, epoch=0):
    check.set_model(model)
    check.on_train_begin()
    check.on_epoch_end(epoch, logs or {"loss": 0.5})
    return check


def test_a_model_that_predicts_one_class_is_caught_and_stopped():
    pictures = np.zeros((20, 4, 4, 1), "float32")
    labels = np.repeat(np.arange(4), 5)
    model = _constant_model([0.0, 3.0, 0.0, 0.0])
    with pytest.warns(TrainingCollapseWarning, match=r"epoch 3 \(one class: class 1 takes 100%"):
        check = _check(model, CollapseCheck(pictures, labels), epoch=2)
    assert (check.collapse, check.collapse_epoch) == ("one class", 2)
    assert model.stop_training


def test_a_set_that_really_holds_one_class_is_not_a_collapse():
    pictures = np.zeros((10, 4, 4, 1), "float32")
    model = _constant_model([0.0, 3.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainingCollapseWarning)
        check = _check(model, CollapseCheck(pictures, np.ones(10, "int64")))
    assert check.collapse is None
    assert not getattr(model, "stop_training", False)


def test_non_finite_loss_is_a_collapse_and_raise_mode_raises():
    model = _constant_model([0.0, 1.0])
    with pytest.warns(TrainingCollapseWarning, match="val_loss is nan"):
        check = _check(model, CollapseCheck(), logs={"loss": 0.3, "val_loss": float("nan")})
    assert check.collapse == "not finite"
    with pytest.raises(RuntimeError, match="loss is inf"):
        _check(model, CollapseCheck(on_collapse="raise"), logs={"loss": float("inf")})


def test_in_fit_a_collapsed_run_stops_at_the_first_bad_epoch():
    x = np.random.default_rng(0).normal(size=(32, 4, 4, 1)).astype("float32")
    y = np.repeat(np.arange(2), 16)
    model = _constant_model([0.0, 50.0])  # class 1 for every picture
    model.compile(keras.optimizers.SGD(0.0), keras.losses.SparseCategoricalCrossentropy(True))
    check = CollapseCheck(x, y)
    with pytest.warns(TrainingCollapseWarning):
        history = model.fit(x, y, epochs=6, batch_size=8, verbose=0, callbacks=[check])
    assert (check.collapse, check.collapse_epoch) == ("one class", 0)
    assert len(history.history["loss"]) == 1


def test_labels_read_from_a_dataset_of_pairs():
    import tensorflow as tf

    pictures = np.zeros((12, 4, 4, 1), "float32")
    labels = np.repeat(np.arange(3), 4)
    data = tf.data.Dataset.from_tensor_slices((pictures, labels)).batch(5)
    check = CollapseCheck(images=data)
    assert check.images is data
    np.testing.assert_array_equal(check.labels, labels)
    with pytest.warns(TrainingCollapseWarning):
        _check(_constant_model([5.0, 0.0, 0.0]), check)


def test_predicted_classes_for_sigmoid_probabilities_logits_and_softmax():
    np.testing.assert_array_equal(predicted_classes(np.array([[0.2], [0.7]])), [0, 1])
    np.testing.assert_array_equal(
        predicted_classes(np.array([[-2.0], [0.3]]), logits=True), [0, 1])
    # logits that happen to lie in [0, 1] are still logits
    np.testing.assert_array_equal(
        predicted_classes(np.array([[0.2], [0.7]]), logits=True), [1, 1])
    np.testing.assert_array_equal(predicted_classes(np.array([[0.1, 0.9], [3, 1]])), [1, 0])
    assert predicted_classes(np.array([[np.nan, 1.0]])) is None


@pytest.mark.parametrize(
    "kwargs, error, message",
    [({"max_share": 0.0}, ValueError, "max_share"),
     ({"max_share": 1.5}, ValueError, "max_share"),
     ({"on_collapse": "ignore"}, ValueError, "on_collapse"),
     ({"images": (np.zeros((2, 4, 4, 1)), [0, 1])}, TypeError, "labels="),
     ({"labels": [0, 1]}, ValueError, "without `images`"),
     ({"images": np.zeros((2, 4, 4, 1)), "labels": [-1, 0]}, ValueError, "minimum -1")],
)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        CollapseCheck(**kwargs)


def test_a_single_logit_output_is_split_at_zero():
    x = np.zeros((10, 4, 4, 1), "float32")
    labels = np.repeat([0, 1], 5)
    logit = _constant_model([0.3])  # a logit of 0.3: class 1 for every picture
    with pytest.warns(TrainingCollapseWarning, match="class 1 takes 100%"):
        _check(logit, CollapseCheck(x, labels))
    inputs = keras.Input((4, 4, 1))
    dense = keras.layers.Dense(1, activation="sigmoid", kernel_initializer="zeros")
    probability = keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))
    dense.bias.assign(np.array([-1.0], "float32"))  # sigmoid(-1) = 0.27: class 0
    with pytest.warns(TrainingCollapseWarning, match="class 0 takes 100%"):
        _check(probability, CollapseCheck(x, labels))
