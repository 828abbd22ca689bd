import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_smalldata.viz import (
    Misclassified,
    class_activation_maps,
    find_misclassified,
    plot_misclassified,
)
from keras_smalldata.viz.misclassified import label_classes
from tests.viz.conftest import region_model, region_pictures
from tests.viz.test_interpretation import colour_data, colour_model


def _mistake_data():
    """8 pictures; the region model predicts red (0) for even, green (1) for odd ones."""
    pictures = np.repeat(region_pictures(), 4, axis=0)[[0, 4, 1, 5, 2, 6, 3, 7]]
    predicted = np.array([0, 1] * 4)
    labels = predicted.copy()
    labels[[1, 2, 7]] = 1 - labels[[1, 2, 7]]  # three mistakes
    return pictures, labels


def _mistakes(kept=3, count=3, total=8):
    """A Misclassified written by hand (no model): red pictures taken for green."""
    pictures, _ = _mistake_data()
    return Misclassified(
        images=pictures[:kept],
        true_class=np.zeros(kept, "int64"),
        predicted=np.ones(kept, "int64"),
        probability=np.full(kept, 0.75),
        index=np.arange(kept, dtype="int64"),
        count=count,
        total=total,
    )


def test_plot_misclassified_draws_the_given_mistakes():
    figure = plot_misclassified(_mistakes(), class_names=["red", "green"])
    assert figure.get_suptitle() == "misclassified: 3 of 8 pictures"
    drawn = [ax for ax in figure.axes if ax.get_images()]
    assert len(figure.axes) == 3 and len(drawn) == 3
    assert [ax.get_title() for ax in drawn] == ["true: red\npred: green (0.75)"] * 3
    capped = plot_misclassified(_mistakes(kept=2), images_per_row=1)
    assert len(capped.axes) == 2
    assert capped.axes[0].get_title() == "true: class 0\npred: class 1 (0.75)"
    assert capped.get_suptitle() == "misclassified: 3 of 8 pictures (first 2 shown)"


def test_plot_misclassified_without_mistakes():
    figure = plot_misclassified(_mistakes(kept=0, count=0))
    assert "No misclassified pictures (8 checked)" in figure.axes[0].texts[0].get_text()


def test_plot_misclassified_overlays_the_given_maps():
    model = region_model("softmax")
    pictures, labels = _mistake_data()
    dataset = tf.data.Dataset.from_tensor_slices((pictures, np.eye(2)[labels])).batch(5)
    mistakes = find_misclassified(model, dataset)
    maps = class_activation_maps(model, mistakes.images, mistakes.predicted)
    plain = plot_misclassified(mistakes)
    overlaid = plot_misclassified(mistakes, maps=maps)
    assert overlaid.get_suptitle() == "misclassified: 3 of 8 pictures"
    assert len(overlaid.axes) == len(plain.axes) == 3
    shown = [np.asarray(ax.get_images()[0].get_array()) for ax in overlaid.axes]
    bare = [np.asarray(ax.get_images()[0].get_array()) for ax in plain.axes]
    assert all(not np.array_equal(a, b) for a, b in zip(shown, bare))
    with pytest.raises(ValueError, match="`maps` has 2 heatmaps but `misclassified`"):
        plot_misclassified(
            mistakes, maps=class_activation_maps(model, mistakes.images[:2])
        )
    with pytest.raises(TypeError, match="ClassActivationMaps"):
        plot_misclassified(mistakes, maps=maps.heatmaps)
    with pytest.raises(TypeError, match="find_misclassified"):
        plot_misclassified(model)


def test_find_misclassified_reads_every_kind_of_data():
    model = region_model("softmax")
    pictures, labels = _mistake_data()
    one_hot = tf.data.Dataset.from_tensor_slices((pictures, np.eye(2)[labels]))
    assert find_misclassified(model, one_hot.batch(5)).count == 3
    sigmoid = region_model("sigmoid")  # class 1 = red: binary float labels, (n, 1)
    binary = (1 - labels).astype("float32")[:, None]
    unbatched = tf.data.Dataset.from_tensor_slices((pictures, binary))
    assert find_misclassified(sigmoid, unbatched).count == 3
    with pytest.raises(ValueError, match="infinite"):
        find_misclassified(
            model, tf.data.Dataset.from_tensor_slices((pictures, labels)).repeat()
        )
    with pytest.raises(ValueError, match="max_images"):
        find_misclassified(model, (pictures, labels), max_images=0)
    with pytest.raises(ValueError, match="labels"):
        find_misclassified(model, iter([pictures]))


def test_find_misclassified_returns_the_mistakes_and_the_counts():
    model = region_model("softmax")
    pictures, labels = _mistake_data()
    mistakes = find_misclassified(model, (pictures, labels), batch_size=3)
    assert (mistakes.count, mistakes.total, mistakes.error_rate) == (3, 8, 3 / 8)
    wrong = [1, 2, 7]
    np.testing.assert_array_equal(mistakes.index, wrong)
    np.testing.assert_array_equal(mistakes.images, pictures[wrong])
    np.testing.assert_array_equal(mistakes.true_class, labels[wrong])
    np.testing.assert_array_equal(mistakes.predicted, 1 - labels[wrong])
    expected = model.predict(pictures[wrong], verbose=0)
    np.testing.assert_allclose(
        mistakes.probability, expected[np.arange(3), mistakes.predicted], rtol=1e-5
    )
    capped = find_misclassified(model, (pictures, labels), max_images=2)
    assert capped.count == 3 and list(capped.index) == [1, 2]
    none = find_misclassified(model, (pictures, np.array([0, 1] * 4)))
    assert (none.count, none.total, len(none.index)) == (0, 8, 0)
    assert none.images.shape == (0,) + pictures.shape[1:]


def test_probabilities_of_a_model_ending_in_an_op_are_its_outputs():
    # region model with a linear head, then keras.ops.softmax: no double softmax
    linear = region_model("linear", scale=3.0)
    model = keras.Model(linear.inputs, keras.ops.softmax(linear.outputs[0]))
    pictures, labels = _mistake_data()
    mistakes = find_misclassified(model, (pictures, labels))
    expected = model.predict(pictures[mistakes.index], verbose=0)
    np.testing.assert_allclose(
        mistakes.probability,
        expected[np.arange(mistakes.count), mistakes.predicted],
        rtol=1e-5,
    )


# Labels that are not classes of the model are refused, not counted as mistakes.


@pytest.mark.parametrize(
    "head, bad, named",
    [
        (
            "softmax",
            7,
            r"Label 7 is not a class of the model .*it has 3 classes .* 0 to 2",
        ),
        ("softmax", -1, r"Label -1 is not a class .* 0 to 2"),
        (
            "sigmoid",
            2,
            r"Label 2 is not a class .*one sigmoid unit, so 2 classes, .* 0 or 1",
        ),
        ("sigmoid", -1, r"Label -1 is not a class .* 0 or 1"),
    ],
)
def test_find_misclassified_refuses_labels_outside_the_models_classes(head, bad, named):
    pictures, labels = colour_data(classes=2)
    labels[[3, 20]] = bad
    with pytest.raises(ValueError, match=named) as error:
        find_misclassified(colour_model(head), (pictures, labels), batch_size=5)
    assert "first at picture 3 of the dataset" in str(error.value)
    with pytest.raises(ValueError, match=named):
        find_misclassified(
            colour_model(head), tf.data.Dataset.from_tensor_slices((pictures, labels))
        )


def test_find_misclassified_refuses_one_hot_rows_of_the_wrong_width():
    pictures, labels = colour_data(classes=2)
    three_classes = colour_model("softmax")
    for width in (2, 4):
        dataset = tf.data.Dataset.from_tensor_slices((pictures, np.eye(width)[labels]))
        with pytest.raises(ValueError, match=rf"width {width}, .* width 3"):
            find_misclassified(three_classes, dataset.batch(8))
    # the region model has 2 softmax units: one-hot rows of width 3 are not its classes
    region_pictures_, region_labels = _mistake_data()
    with pytest.raises(ValueError, match=r"width 3, .* 2 classes"):
        find_misclassified(
            region_model("softmax"), (region_pictures_, np.eye(3)[[0] * 8])
        )
    with pytest.raises(ValueError, match=r"row 1 of the dataset sums to 0"):
        find_misclassified(
            three_classes, (pictures[:2], np.array([[0, 1, 0], [0, 0, 0]]))
        )


def test_find_misclassified_accepts_every_label_form_of_a_sigmoid():
    pictures, labels = _mistake_data()
    sigmoid = region_model("sigmoid")  # class 1 = red
    reference = find_misclassified(sigmoid, (pictures, 1 - labels))
    assert reference.count == 3
    for form in ((1 - labels)[:, None].astype("float32"), np.eye(2)[1 - labels]):
        mistakes = find_misclassified(sigmoid, (pictures, form))
        np.testing.assert_array_equal(mistakes.index, reference.index)


@settings(max_examples=60, deadline=None)
@given(
    units=st.integers(1, 5),
    labels=st.lists(st.integers(-3, 7), min_size=1, max_size=12),
    column=st.booleans(),
)
def test_label_classes_keeps_exactly_the_models_classes(units, labels, column):
    classes = max(units, 2)
    array = np.array(labels)[:, None] if column else np.array(labels)
    bad = [v for v in labels if not 0 <= v < classes]
    if not bad:
        np.testing.assert_array_equal(label_classes(array, units), labels)
        np.testing.assert_array_equal(
            label_classes(np.eye(classes)[labels], units), labels
        )
        return
    with pytest.raises(ValueError) as error:
        label_classes(array, units, first=100)
    message = str(error.value)
    plural = "s" if len(set(bad)) > 1 else ""
    assert re.match(rf"Label{plural} {min(bad)}[ ,]", message)  # sorted: smallest first
    assert f"picture {100 + labels.index(bad[0])} of the dataset" in message
    assert ("one sigmoid unit" in message) == (units == 1)
