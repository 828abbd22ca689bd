import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_smalldata.viz import find_misclassified, plot_misclassified
from tests.viz.conftest import region_model, region_pictures


def _mistake_data():
    """8 pictures; the region model predicts red (0) for even, green (1) for odd ones."""
    pictures = np.repeat(region_pictures(), 4, axis=0)[[0, 4, 1, 5, 2, 6, 3, 7]]
    predicted = np.array([0, 1] * 4)
    labels = predicted.copy()
    labels[[1, 2, 7]] = 1 - labels[[1, 2, 7]]  # three mistakes
    return pictures, labels


def test_plot_misclassified_counts_and_titles():
    model = region_model("softmax")
    pictures, labels = _mistake_data()
    figure = plot_misclassified(
        model, (pictures, labels), class_names=["red", "green"], batch_size=3
    )
    assert figure._suptitle.get_text() == "misclassified: 3 of 8 pictures"
    drawn = [ax for ax in figure.axes if ax.get_images()]
    assert len(drawn) == 3
    assert drawn[0].get_title().startswith("true: red\npred: green (")
    capped = plot_misclassified(model, (pictures, labels), max_images=2)
    assert len([ax for ax in capped.axes if ax.get_images()]) == 2
    assert "(first 2 shown)" in capped._suptitle.get_text()


def test_plot_misclassified_from_tf_data_with_one_hot_labels_and_heatmaps():
    model = region_model("softmax")
    pictures, labels = _mistake_data()
    dataset = tf.data.Dataset.from_tensor_slices((pictures, np.eye(2)[labels])).batch(5)
    figure = plot_misclassified(model, dataset, show_heatmap=True)
    assert figure._suptitle.get_text() == "misclassified: 3 of 8 pictures"
    sigmoid = region_model(
        "sigmoid"
    )  # class 1 = red: binary float labels, shape (n, 1)
    binary = (1 - labels).astype("float32")[:, None]
    figure = plot_misclassified(
        sigmoid, tf.data.Dataset.from_tensor_slices((pictures, binary))
    )
    assert figure._suptitle.get_text() == "misclassified: 3 of 8 pictures"
    with pytest.raises(ValueError, match="infinite"):
        plot_misclassified(
            model, tf.data.Dataset.from_tensor_slices((pictures, labels)).repeat()
        )


def test_plot_misclassified_without_mistakes():
    model = region_model("softmax")
    pictures, labels = _mistake_data()
    figure = plot_misclassified(model, (pictures, np.array([0, 1] * 4)))
    assert "No misclassified pictures (8 checked)" in figure.axes[0].texts[0].get_text()
    with pytest.raises(ValueError, match="max_images"):
        plot_misclassified(model, (pictures, labels), max_images=0)
    with pytest.raises(ValueError, match="labels"):
        plot_misclassified(model, iter([pictures]))


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
