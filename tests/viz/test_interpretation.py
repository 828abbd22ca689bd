"""Tests for `interpret`: confusion matrix, most confused classes, top losses and their figures."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_smalldata.viz import Interpretation, class_activation_maps, interpret
from keras_smalldata.viz.overlay import overlay_heatmap, to_display_image

SIZE = 16
NAMES = ["red", "green", "blue"]


def colour_model(head: str = "softmax", scale: float = 4.0) -> keras.Model:
    """A model whose outputs are known: logits = scale * (mean red, mean green, mean blue).

    An identity 1x1 convolution (the Grad-CAM layer), global average pooling,
    then a Dense with an identity kernel: softmax over the three colours
    ("softmax"), the same logits ("logits"), or one sigmoid unit whose logit is
    scale * (mean red - mean green) ("sigmoid": class 1 = red).
    """
    inputs = keras.Input((SIZE, SIZE, 3))
    conv = keras.layers.Conv2D(3, 1, use_bias=False, name="colours")
    x = keras.layers.GlobalAveragePooling2D()(conv(inputs))
    if head == "sigmoid":
        dense = keras.layers.Dense(1, activation="sigmoid")
        kernel = scale * np.array([[1.0], [-1.0], [0.0]], dtype="float32")
    else:
        activation = "softmax" if head == "softmax" else None
        dense = keras.layers.Dense(3, activation=activation)
        kernel = scale * np.eye(3, dtype="float32")
    model = keras.Model(inputs, dense(x), name=f"colour_{head}")
    conv.set_weights([np.eye(3, dtype="float32")[None, None]])
    dense.set_weights([kernel, np.zeros(kernel.shape[1], dtype="float32")])
    return model


def expected_probabilities(pictures: np.ndarray, head: str, scale: float = 4.0):
    """The colour model's per-class probabilities, computed with NumPy in float64."""
    means = pictures.astype("float64").mean(axis=(1, 2))
    if head == "sigmoid":
        p = 1.0 / (1.0 + np.exp(-scale * (means[:, 0] - means[:, 1])))
        return np.stack([1.0 - p, p], axis=1)
    logits = scale * means
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def colour_data(count: int = 23, classes: int = 3, seed: int = 0):
    """Pictures of one dominant colour plus noise, and random labels (many mistakes)."""
    rng = np.random.default_rng(seed)
    colour = rng.uniform(0.0, 1.0, size=(count, 1, 1, 3))
    noise = rng.uniform(-0.1, 0.1, size=(count, SIZE, SIZE, 3))
    pictures = (colour + noise).astype("float32")
    labels = rng.integers(0, classes, size=count)
    return pictures, labels


HEADS = [("softmax", 3), ("logits", 3), ("sigmoid", 2)]


@pytest.mark.parametrize("head, classes", HEADS)
def test_counts_probabilities_and_losses_match_an_independent_computation(
    head, classes
):
    pictures, labels = colour_data(classes=classes)
    result = interpret(colour_model(head), (pictures, labels), batch_size=5)
    probabilities = expected_probabilities(pictures, head)
    predicted = probabilities.argmax(axis=1)
    np.testing.assert_allclose(result.probabilities, probabilities, rtol=1e-5)
    np.testing.assert_array_equal(result.labels, labels)
    np.testing.assert_array_equal(result.predicted, predicted)
    assert 0 < np.sum(predicted != labels) < len(labels)  # some right, some wrong

    counts = np.zeros((classes, classes), dtype="int64")
    np.add.at(counts, (labels, predicted), 1)
    np.testing.assert_array_equal(result.confusion_matrix, counts)
    assert result.confusion_matrix.dtype.kind == "i"
    np.testing.assert_array_equal(
        result.confusion_matrix.sum(axis=1), np.bincount(labels, minlength=classes)
    )

    losses = -np.log(probabilities[np.arange(len(labels)), labels])
    np.testing.assert_allclose(result.losses, losses, rtol=1e-5)
    order = sorted(range(len(labels)), key=lambda i: (-losses[i], i))
    np.testing.assert_array_equal(result.top_losses(9), order[:9])
    assert np.all(np.diff(result.losses[result.top_losses(23)]) <= 0)
    np.testing.assert_array_equal(result.top_losses(100), order)  # capped at all


@pytest.mark.parametrize("head, classes", HEADS)
def test_losses_are_the_cross_entropy_keras_computes(head, classes):
    pictures, labels = colour_data(classes=classes)
    model = colour_model(head)
    result = interpret(model, (pictures, labels))
    outputs = model.predict(pictures, verbose=0)
    if head == "sigmoid":
        keras_losses = keras.losses.binary_crossentropy(
            labels[:, None].astype("float32"), outputs
        )
    else:
        keras_losses = keras.losses.sparse_categorical_crossentropy(
            labels, outputs, from_logits=head == "logits"
        )
    np.testing.assert_allclose(
        result.losses, keras.ops.convert_to_numpy(keras_losses), rtol=1e-4, atol=1e-6
    )


def test_a_saturated_wrong_softmax_has_a_finite_loss():
    pictures = np.zeros((2, SIZE, SIZE, 3), dtype="float32")
    pictures[:, :, :, 0] = 1.0  # pure red, p(green) = softmax(1000 * (1, 0, 0))[1] = 0
    result = interpret(colour_model("softmax", scale=1000.0), (pictures, [1, 0]))
    np.testing.assert_allclose(
        result.losses, [-np.log(keras.config.epsilon()), 0.0], atol=1e-6
    )
    assert "loss 0.00" in result.plot_top_losses(2, grad_cam=False).axes[1].get_title()


@pytest.mark.parametrize("batch_size, max_images", [(1, 5), (4, 1), (5, 30), (64, 7)])
def test_the_kept_pictures_are_the_top_losses_whatever_the_batches(
    batch_size, max_images
):
    pictures, labels = colour_data(count=18)
    result = interpret(
        colour_model(), (pictures, labels), batch_size=batch_size, max_images=max_images
    )
    kept = min(max_images, len(labels))
    assert len(result.images) == kept
    np.testing.assert_array_equal(result.images, pictures[result.top_losses(kept)])


def test_equal_losses_keep_the_order_of_the_dataset():
    # saturated: every mistake has p(true) = 0, so the same loss -log(epsilon)
    pictures, labels = colour_data(count=18)
    model = colour_model(scale=1000.0)
    result = interpret(model, (pictures, labels), batch_size=4, max_images=5)
    mistakes = np.flatnonzero(
        expected_probabilities(pictures, "softmax").argmax(1) != labels
    )
    assert len(mistakes) > 5
    assert np.all(result.losses[mistakes] == result.losses[mistakes[0]])
    np.testing.assert_array_equal(result.top_losses(5), mistakes[:5])
    np.testing.assert_array_equal(result.images, pictures[mistakes[:5]])


def test_arrays_and_tf_data_give_the_same_interpretation():
    pictures, labels = colour_data()
    model = colour_model("logits")
    from_arrays = interpret(model, (pictures, labels), batch_size=5, max_images=6)
    dataset = tf.data.Dataset.from_tensor_slices((pictures, np.eye(3)[labels])).batch(7)
    from_dataset = interpret(model, dataset, max_images=6)
    for name in ("labels", "predicted", "confusion_matrix", "images"):
        np.testing.assert_array_equal(
            getattr(from_dataset, name), getattr(from_arrays, name), err_msg=name
        )
    for name in ("probabilities", "losses"):  # float32 sums of other batch sizes
        np.testing.assert_allclose(
            getattr(from_dataset, name), getattr(from_arrays, name), rtol=1e-5
        )
    unbatched = interpret(
        model, tf.data.Dataset.from_tensor_slices((pictures, labels)), max_images=6
    )
    np.testing.assert_array_equal(unbatched.top_losses(6), from_arrays.top_losses(6))


def test_most_confused_counts_every_pair_of_different_classes():
    pictures, labels = colour_data(count=40)
    result = interpret(colour_model(), (pictures, labels), class_names=NAMES)
    predicted = expected_probabilities(pictures, "softmax").argmax(axis=1)
    pairs = {}
    for true, guess in zip(labels, predicted):
        if true != guess:
            pairs[(NAMES[true], NAMES[guess])] = (
                pairs.get((NAMES[true], NAMES[guess]), 0) + 1
            )
    confused = result.most_confused()
    assert {(t, p): c for t, p, c in confused} == pairs
    assert [c for _, _, c in confused] == sorted(pairs.values(), reverse=True)
    at_least_3 = result.most_confused(min_count=3)
    assert at_least_3 == [pair for pair in confused if pair[2] >= 3]
    unnamed = interpret(colour_model(), (pictures, labels)).most_confused()
    assert [(NAMES[t], NAMES[p], c) for t, p, c in unnamed] == confused


def test_confusion_matrix_figure_has_the_names_and_the_counts():
    pictures, labels = colour_data(count=30)
    result = interpret(colour_model(), (pictures, labels), class_names=NAMES)
    figure = result.plot_confusion_matrix()
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == NAMES
    assert [t.get_text() for t in ax.get_yticklabels()] == NAMES
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted", "true")
    counts = result.confusion_matrix
    cells = {
        (round(t.get_position()[1]), round(t.get_position()[0])): t.get_text()
        for t in ax.texts
    }
    assert cells == {(i, j): str(counts[i, j]) for i in range(3) for j in range(3)}
    accuracy = np.trace(counts) / counts.sum()
    assert f"30 pictures, accuracy {accuracy:.1%}" in ax.get_title()

    normalized = result.plot_confusion_matrix(normalize=True).axes[0]
    fractions = counts / counts.sum(axis=1, keepdims=True)
    cells = {
        (round(t.get_position()[1]), round(t.get_position()[0])): t.get_text()
        for t in normalized.texts
    }
    assert cells == {
        (i, j): f"{fractions[i, j]:.2f}" for i in range(3) for j in range(3)
    }
    np.testing.assert_allclose(normalized.get_images()[0].get_array().sum(axis=1), 1.0)


def test_confusion_matrix_draws_into_a_given_axes_and_without_names():
    from matplotlib.figure import Figure

    pictures, labels = colour_data(classes=2)
    result = interpret(colour_model("sigmoid"), (pictures, labels))
    figure = Figure()
    ax = figure.add_subplot(1, 2, 2)
    assert result.plot_confusion_matrix(ax=ax, normalize=True) is figure
    assert [t.get_text() for t in ax.get_xticklabels()] == ["class 0", "class 1"]
    # a class without pictures gets a row of zeros, not NaN
    only_zeros = interpret(colour_model("sigmoid"), (pictures, np.zeros(23, int)))
    drawn = only_zeros.plot_confusion_matrix(normalize=True).axes[0]
    np.testing.assert_array_equal(drawn.get_images()[0].get_array()[1], [0.0, 0.0])


@pytest.mark.parametrize("head, classes", HEADS)
def test_top_losses_figure_has_k_panels_titled_and_overlaid(head, classes):
    pictures, labels = colour_data(classes=classes)
    names = NAMES[:classes]
    model = colour_model(head)
    result = interpret(model, (pictures, labels), class_names=names, max_images=6)
    figure = result.plot_top_losses(4)
    panels = [ax for ax in figure.axes if ax.get_images()]
    assert len(panels) == 4
    top = result.top_losses(4)
    heatmaps = class_activation_maps(
        model, pictures[top], class_index=result.predicted[top]
    ).heatmaps
    for ax, i, heatmap in zip(panels, top, heatmaps):
        p = result.probabilities[i, result.predicted[i]]
        assert ax.get_title() == (
            f"true: {names[labels[i]]}\npred: {names[result.predicted[i]]} ({p:.2f})\n"
            f"loss {result.losses[i]:.2f}, picture {i}"
        )
        shown = np.asarray(ax.get_images()[0].get_array())
        expected = overlay_heatmap(to_display_image(pictures[i]), heatmap)
        np.testing.assert_allclose(shown, expected, atol=2)
    assert "top 4 losses of 23 pictures" in figure.get_suptitle()
    plain = result.plot_top_losses(6, grad_cam=False, images_per_row=6)
    panels = [ax for ax in plain.axes if ax.get_images()]
    assert len(panels) == 6
    np.testing.assert_array_equal(
        panels[0].get_images()[0].get_array(), to_display_image(pictures[top[0]])
    )


def test_top_losses_beyond_the_kept_pictures_are_refused():
    pictures, labels = colour_data()
    result = interpret(colour_model(), (pictures, labels), max_images=3)
    assert result.images.shape == (3, SIZE, SIZE, 3)
    assert len(result.top_losses(10)) == 10  # the losses of every picture are kept
    with pytest.raises(ValueError, match=r"max_images=5"):
        result.plot_top_losses(5)
    none = interpret(colour_model(), (pictures, labels), max_images=0)
    assert none.images.shape == (0, SIZE, SIZE, 3)
    with pytest.raises(ValueError, match="only the 0 highest"):
        none.plot_top_losses(1)
    with pytest.raises(ValueError, match="`k`"):
        result.top_losses(0)


def test_bad_arguments_are_refused_with_their_names():
    pictures, labels = colour_data()
    model = colour_model()
    with pytest.raises(
        ValueError, match="`class_names` has 2 names but the model has 3"
    ):
        interpret(model, (pictures, labels), class_names=["a", "b"])
    with pytest.raises(TypeError, match="class_names"):
        interpret(model, (pictures, labels), class_names="red")
    with pytest.raises(ValueError, match="max_images"):
        interpret(model, (pictures, labels), max_images=-1)
    with pytest.raises(ValueError, match="verbose"):
        interpret(model, (pictures, labels), verbose=3)
    with pytest.raises(TypeError, match="model"):
        interpret("model.keras", (pictures, labels))
    with pytest.raises(ValueError, match="no pictures"):
        interpret(model, (pictures[:0], labels[:0]))
    with pytest.raises(ValueError, match="infinite"):
        interpret(
            model, tf.data.Dataset.from_tensor_slices((pictures, labels)).repeat()
        )


@pytest.mark.parametrize(
    "head, bad, named",
    [
        (
            "softmax",
            7,
            r"Label 7 is not a class of the model .*it has 3 classes .* 0 to 2",
        ),
        ("softmax", -1, r"Label -1 is not a class .* 0 to 2"),
        ("logits", 3, r"Label 3 is not a class .* 0 to 2"),
        (
            "sigmoid",
            2,
            r"Label 2 is not a class .*one sigmoid unit, so 2 classes, .* 0 or 1",
        ),
        ("sigmoid", -1, r"Label -1 is not a class .* 0 or 1"),
        ("softmax", 0.5, r"Label 0.5 is not a class of the model"),
    ],
)
def test_labels_outside_the_models_classes_are_refused(head, bad, named):
    pictures, labels = colour_data(classes=2)
    labels = labels.astype("float64" if isinstance(bad, float) else "int64")
    labels[9] = bad
    with pytest.raises(ValueError, match=named) as error:
        interpret(colour_model(head), (pictures, labels), batch_size=4)
    assert "picture 9 of the dataset" in str(error.value)


@pytest.mark.parametrize(
    "head, width", [("softmax", 4), ("softmax", 2), ("sigmoid", 3)]
)
def test_one_hot_rows_of_the_wrong_width_are_refused(head, width):
    pictures, labels = colour_data(classes=2)
    dataset = tf.data.Dataset.from_tensor_slices((pictures, np.eye(width)[labels]))
    accepted = "one-hot rows of width 2" if head == "sigmoid" else "width 3"
    with pytest.raises(ValueError, match=rf"one-hot rows of width {width}.*{accepted}"):
        interpret(colour_model(head), dataset.batch(8))


def test_the_accepted_label_forms_give_the_same_result():
    pictures, labels = colour_data(classes=2)
    model = colour_model("sigmoid")
    reference = interpret(model, (pictures, labels))
    for form in (
        labels.astype("float32")[:, None],  # label_mode="binary"
        np.eye(2, dtype="float32")[labels],  # one-hot rows of width 2
        labels.astype(bool),
    ):
        result = interpret(model, (pictures, form))
        np.testing.assert_array_equal(result.labels, reference.labels)
        np.testing.assert_array_equal(result.losses, reference.losses)


def test_progress_bar_only_when_verbose(capsys):
    pictures, labels = colour_data()
    interpret(colour_model(), (pictures, labels), batch_size=5)
    assert capsys.readouterr().out == ""
    interpret(colour_model(), (pictures, labels), batch_size=5, verbose=1)
    assert "5/5" in capsys.readouterr().out


def test_interpretation_is_a_plain_dataclass():
    pictures, labels = colour_data()
    result = interpret(colour_model(), (pictures, labels))
    assert isinstance(result, Interpretation)
    assert result.classes == 3 and result.class_names is None
    right = np.sum(result.labels == result.predicted)
    assert repr(result) == (
        f"Interpretation(23 pictures, 3 classes, accuracy {right / 23:.1%}, "
        "pictures of the top 16 losses kept)"
    )
