"""small_convnet: the seeds' baseline, its parameter count, names, heads and errors."""

import keras
import numpy as np
import pytest

from keras_smalldata.augment import RandomAffine
from keras_smalldata.training import small_convnet


def _expected_params(size, filters, hidden_units, outputs):
    """Counts the weights by hand: 3x3 kernels + biases, then the dense layers."""
    total, channels = 0, 3
    for count in filters:
        total += 3 * 3 * channels * count + count
        channels = count
        size //= 2
    flat = size * size * channels
    if hidden_units:
        total += flat * hidden_units + hidden_units
        flat = hidden_units
    return total + flat * outputs + outputs


@pytest.mark.parametrize(
    "size, filters, hidden_units, classes",
    [(150, (32, 64, 128, 128), 256, 2), (64, (32, 64, 128), None, 2), (32, (8,), 16, 5)],
)
def test_parameter_count(size, filters, hidden_units, classes):
    model = small_convnet(
        (size, size, 3), filters=filters, hidden_units=hidden_units, num_classes=classes
    )
    outputs = 1 if classes == 2 else classes
    assert model.count_params() == _expected_params(size, filters, hidden_units, outputs)
    assert model.output.shape == (None, outputs)


def test_the_seeds_model_at_150_px():
    # Four blocks: 150 -> 75 -> 37 -> 18 -> 9 ("same" convolutions, 2x2 pooling).
    model = small_convnet()
    assert model.get_layer("pool4").output.shape == (None, 9, 9, 128)
    assert model.get_layer("output").activation is keras.activations.sigmoid


def test_softmax_for_more_classes_and_stable_names():
    model = small_convnet((32, 32, 3), num_classes=3)
    assert model.get_layer("output").activation is keras.activations.softmax
    names = [layer.name for layer in model.layers]
    assert names[:4] == ["image", "rescaling", "conv1", "pool1"] and names[-1] == "output"
    other = small_convnet((32, 32, 3), num_classes=3)
    assert [layer.name for layer in other.layers] == names


def test_augmentation_first_and_inactive_at_inference(tmp_path):
    augmentation = RandomAffine(rotation_range=30, seed=0)
    model = small_convnet((32, 32, 3), filters=(4,), hidden_units=None, augmentation=augmentation)
    assert model.layers[1] is augmentation and model.layers[2].name == "rescaling"
    pictures = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    bare = keras.Model(model.get_layer("rescaling").input, model.output)
    np.testing.assert_allclose(model.predict(pictures, verbose=0), bare.predict(pictures, verbose=0))
    path = tmp_path / "model.keras"
    model.save(path)
    again = keras.models.load_model(path)
    np.testing.assert_allclose(again.predict(pictures, verbose=0), model.predict(pictures, verbose=0))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"filters": ()}, "at least one block"),
        ({"filters": (32, 0)}, r"`filters` must be a positive int\. Received: filters=0"),
        ({"hidden_units": 0}, "`hidden_units` must be a positive int"),
        ({"dropout": 1.0}, r"`dropout` must be a number in \[0, 1\)\. Received: dropout=1.0"),
        ({"num_classes": 1}, "`num_classes` must be an int >= 2. Received: num_classes=1"),
        ({"seed": -1}, "Received: seed=-1"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        small_convnet((32, 32, 3), **kwargs)


def test_seeded_dropout_keeps_the_initial_weights_of_the_model_without_it():
    keras.utils.set_random_seed(3)
    plain = small_convnet((32, 32, 3), filters=(4,), hidden_units=8, dropout=0.0, seed=1)
    keras.utils.set_random_seed(3)
    with_dropout = small_convnet((32, 32, 3), filters=(4,), hidden_units=8, dropout=0.5, seed=1)
    for a, b in zip(plain.get_weights(), with_dropout.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert with_dropout.get_layer("dropout").seed == 1


@pytest.mark.parametrize(
    "shape, filters, message",
    [
        ((8, 8, 3), (32, 64, 128, 128),
         r"`input_shape` \(8, 8, 3\) is too small for 4 blocks: each block halves the size "
         r"\(8 -> 4 -> 2 -> 1 -> 0\), so the pictures must be at least 16x16 for 4 blocks\. "
         r"Use larger pictures, or at most 3 blocks at 8 px, e\.g\. filters=\(32, 64, 128\)\. "
         r"Received: input_shape=\(8, 8, 3\)\."),
        ((64, 15, 3), (8, 8, 8, 8), r"\(15 -> 7 -> 3 -> 1 -> 0\).*filters=\(8, 8, 8\)"),
        ((1, 1, 3), (4,), r"too small for 1 block: .* Use larger pictures\. Received"),
        ((8, 8), (4,), r"must be \(height, width, channels\) of positive ints"),
        ((None, None, 3), (4,), r"needs a fixed size\. Received: input_shape=\(None, None, 3\)"),
    ],
)
def test_pictures_too_small_for_the_blocks_are_refused_with_what_fits(shape, filters, message):
    """Issue 23: 8x8 pictures failed inside MaxPooling2D."""
    with pytest.raises(ValueError, match=message):
        small_convnet(shape, filters=filters)


def test_the_smallest_pictures_for_the_blocks_build():
    model = small_convnet((16, 16, 3))
    assert model.get_layer("pool4").output.shape == (None, 1, 1, 128)
