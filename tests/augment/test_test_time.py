"""Test-time augmentation: exact views, exact averages, arrays and datasets alike."""

import logging

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_smalldata.augment import predict_with_tta
from keras_smalldata.augment.test_time import FLIPS, view

NUMPY_MODES = {"reflect": "symmetric", "nearest": "edge"}  # d c b a | a b c d, a a | a b


def reference_shift(x, shift, axis, fill_mode):
    """Moves ``x`` by ``shift`` pixels along ``axis`` (positive: down / right), with np.pad."""
    n = x.shape[axis]
    if shift == 0:
        return x
    widths = [(0, 0)] * x.ndim
    widths[axis] = (shift, 0) if shift > 0 else (0, -shift)
    padded = np.pad(x, widths, mode=NUMPY_MODES[fill_mode])
    start = 0 if shift > 0 else -shift
    return np.take(padded, np.arange(start, start + n), axis=axis)


def reference_view(x, flip, shift, fill_mode="reflect"):
    """The view by the definition: np.flip, then np.pad + slice on each axis."""
    if flip in ("vertical", "horizontal_and_vertical"):
        x = np.flip(x, axis=1)
    if flip in ("horizontal", "horizontal_and_vertical"):
        x = np.flip(x, axis=2)
    pixels = [
        s if isinstance(s, int) else int(np.sign(s) * np.floor(abs(s) * n + 0.5))
        for s, n in zip(shift, x.shape[1:3])
    ]
    x = reference_shift(x, pixels[0], 1, fill_mode)
    return reference_shift(x, pixels[1], 2, fill_mode)


def left_half_mean_model(height=2, width=4):
    """Outputs the mean of the left half of each picture: (batch, 1)."""
    inputs = keras.Input((height, width, 1))
    half = keras.layers.Cropping2D(((0, 0), (0, width // 2)))(inputs)
    outputs = keras.layers.GlobalAveragePooling2D()(half)
    return keras.Model(inputs, outputs)


def small_convnet(size=12, channels=3, classes=3, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, channels))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def pictures(n=5, size=12, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (n, size, size, channels)).astype("float32")


def test_only_the_identity_view_is_exactly_model_predict():
    model = small_convnet()
    x = pictures()
    expected = model.predict(x, verbose=0)
    got = predict_with_tta(model, x, flips=("none",), shifts=0)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    dataset = tf.data.Dataset.from_tensor_slices((x, np.zeros(5))).batch(2)
    np.testing.assert_array_equal(
        predict_with_tta(model, dataset, flips="none"), model.predict(dataset, verbose=0)
    )


def test_a_flip_invariant_model_is_unchanged_by_the_flip_views():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((10, 10, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    outputs = keras.layers.Dense(4, activation="softmax")(pooled)
    model = keras.Model(inputs, outputs)
    x = pictures(size=10)
    expected = model.predict(x, verbose=0)
    for flips in (("none", "horizontal"), FLIPS):
        got = predict_with_tta(model, x, flips=flips)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_the_average_by_hand_on_a_left_half_model():
    """Pictures [[1, 2, 3, 4], [5, 6, 7, 8]]: the model outputs the mean of columns 0-1."""
    model = left_half_mean_model()
    x = np.array([[1, 2, 3, 4], [5, 6, 7, 8]], "float32")[None, :, :, None]
    # Identity: (1+2+5+6)/4 = 3.5; mirrored [[4,3,2,1],...]: (4+3+8+7)/4 = 5.5.
    np.testing.assert_allclose(predict_with_tta(model, x), [[4.5]], rtol=1e-6)
    # Right by 1 (reflect and nearest alike): [[1,1,2,3],[5,5,6,7]] -> 3.0;
    # left by 1: [[2,3,4,4],[6,7,8,8]] -> 4.5.
    for fill_mode in ("reflect", "nearest"):
        got = predict_with_tta(
            model, x, flips=("none",), shifts=[(0, 1), (0, -1)], fill_mode=fill_mode
        )
        np.testing.assert_allclose(got, [[(3.0 + 4.5) / 2]], rtol=1e-6)
    # Right by 3: reflect [[3,2,1,1],...] -> (3+2+7+6)/4 = 4.5;
    # nearest [[1,1,1,1],...] -> 3.0.
    reflect = predict_with_tta(model, x, flips=("none",), shifts=[(0, 3)])
    nearest = predict_with_tta(model, x, flips=("none",), shifts=[(0, 3)], fill_mode="nearest")
    np.testing.assert_allclose([reflect[0, 0], nearest[0, 0]], [4.5, 3.0], rtol=1e-6)
    # Down by 1: rows [[1,2,3,4],[1,2,3,4]] -> (1+2+1+2)/4 = 1.5.
    down = predict_with_tta(model, x, flips=("none",), shifts=[(1, 0)])
    np.testing.assert_allclose(down, [[1.5]], rtol=1e-6)


def test_the_average_equals_the_mean_of_predictions_on_reference_views():
    model = small_convnet()
    x = pictures(n=7)
    for flips, shifts, pairs, fill_mode in (
        (("none", "vertical"), 2, [(0, 0), (-2, 0), (2, 0), (0, -2), (0, 2)], "reflect"),
        (("horizontal",), [(0, 0), (0.25, -0.1)], [(0, 0), (0.25, -0.1)], "nearest"),
    ):
        expected = np.mean(
            [
                model.predict(reference_view(x, flip, pair, fill_mode), verbose=0)
                for flip in flips
                for pair in pairs
            ],
            axis=0,
        )
        got = predict_with_tta(
            model, x, flips=flips, shifts=shifts, fill_mode=fill_mode, batch_size=4
        )
        assert got.shape == (7, 3) and got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-5)


def test_fraction_shifts_round_to_whole_pixels():
    model = small_convnet()
    x = pictures()
    # 0.25 of 12 is 3 pixels; 0.2 of 12 is 2.4, i.e. 2.
    np.testing.assert_array_equal(
        predict_with_tta(model, x, shifts=[(0.25, -0.2)]),
        predict_with_tta(model, x, shifts=[(3, -2)]),
    )


@settings(max_examples=25, deadline=None)
@given(
    height=st.integers(1, 7),
    width=st.integers(1, 7),
    flip=st.sampled_from(FLIPS),
    fill_mode=st.sampled_from(["reflect", "nearest"]),
    data=st.data(),
)
def test_views_match_pad_and_slice(height, width, flip, fill_mode, data):
    shift = (
        data.draw(st.integers(-(height - 1), height - 1)),
        data.draw(st.integers(-(width - 1), width - 1)),
    )
    x = np.arange(2 * height * width * 2, dtype="float32").reshape(2, height, width, 2)
    got = keras.ops.convert_to_numpy(view(x, flip, shift, fill_mode))
    np.testing.assert_array_equal(got, reference_view(x, flip, shift, fill_mode))


def test_arrays_and_datasets_give_the_same_result():
    model = small_convnet()
    x = pictures(n=7)
    labels = np.arange(7)
    shifts = [(0, 0), (1, -1)]
    from_array = predict_with_tta(model, x, shifts=shifts, batch_size=4)
    for dataset in (
        tf.data.Dataset.from_tensor_slices(x).batch(3),
        tf.data.Dataset.from_tensor_slices((x, labels)).batch(4),
        tf.data.Dataset.from_tensor_slices((x, labels, np.ones(7))).batch(7),
    ):
        got = predict_with_tta(model, dataset, shifts=shifts)
        np.testing.assert_allclose(got, from_array, rtol=1e-5, atol=1e-7)
    # uint8 pictures: the same pixels, the same answer.
    as_uint8 = np.round(x).astype("uint8")
    np.testing.assert_allclose(
        predict_with_tta(model, as_uint8, batch_size=8),
        predict_with_tta(model, as_uint8.astype("float32"), batch_size=8),
        rtol=1e-6,
    )


def test_several_outputs_keep_their_structure():
    inputs = keras.Input((2, 4, 1))
    left = left_half_mean_model()(inputs)
    flat = keras.layers.Flatten()(inputs)
    x = np.array([[1, 2, 3, 4], [5, 6, 7, 8]], "float32")[None, :, :, None]
    as_dict = keras.Model(inputs, {"left": left, "pixels": flat})
    got = predict_with_tta(as_dict, x)
    assert sorted(got) == ["left", "pixels"]
    np.testing.assert_allclose(got["left"], [[4.5]], rtol=1e-6)
    # Flattened pixels of a picture and its mirror image, averaged.
    mirrored = x[:, :, ::-1]
    np.testing.assert_allclose(got["pixels"], ((x + mirrored) / 2).reshape(1, -1))
    as_list = keras.Model(inputs, [left, flat])
    got_list = predict_with_tta(as_list, x)
    expected_list = as_list.predict(x, verbose=0)
    assert type(got_list) is type(expected_list) and len(got_list) == 2
    np.testing.assert_allclose(got_list[0], [[4.5]], rtol=1e-6)


def test_an_unbuilt_sequential_model_works():
    keras.utils.set_random_seed(2)
    model = keras.Sequential(
        [keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2, activation="softmax")]
    )
    got = predict_with_tta(model, pictures(size=8), flips=("none", "vertical"))
    assert got.shape == (5, 2)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-6)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's log")
def test_repeated_calls_do_not_log_tensorflow_retracing_warnings(caplog):
    model = small_convnet()
    x = pictures(n=2)
    with caplog.at_level(logging.WARNING):
        for _ in range(7):
            predict_with_tta(model, x)
    assert "retracing" not in caplog.text


def test_bad_arguments_are_named():
    model = small_convnet()
    x = pictures()
    with pytest.raises(ValueError, match="Did you mean 'horizontal'"):
        predict_with_tta(model, x, flips=("none", "horizonal"))
    with pytest.raises(ValueError, match="twice"):
        predict_with_tta(model, x, flips=("none", "none"))
    with pytest.raises(TypeError, match="flips"):
        predict_with_tta(model, x, flips=())
    with pytest.raises(ValueError, match=r"\(-1, 1\)"):
        predict_with_tta(model, x, shifts=1.5)
    with pytest.raises(ValueError, match=">= 0"):
        predict_with_tta(model, x, shifts=-2)
    with pytest.raises(ValueError, match="out of range for pictures of width 12"):
        predict_with_tta(model, x, shifts=[(0, 0), (0, 12)])
    with pytest.raises(TypeError, match="pair"):
        predict_with_tta(model, x, shifts=[1, 2])
    with pytest.raises(ValueError, match="twice"):
        predict_with_tta(model, x, shifts=[(0, 1), (0, 1)])
    with pytest.raises(TypeError, match="shift must be an int"):
        predict_with_tta(model, x, shifts=[(0, "1")])
    with pytest.raises(ValueError, match="Did you mean 'nearest'"):
        predict_with_tta(model, x, fill_mode="neares")
    with pytest.raises(ValueError, match="fill_mode"):
        predict_with_tta(model, x, fill_mode="constant")
    with pytest.raises(ValueError, match="batch_size"):
        predict_with_tta(model, x, batch_size=0)
    with pytest.raises(ValueError, match="verbose"):
        predict_with_tta(model, x, verbose=3)
    with pytest.raises(TypeError, match="keras.Model"):
        predict_with_tta(lambda t: t, x)
    with pytest.raises(TypeError):
        predict_with_tta(model, x, ("none",))  # options are keyword-only


def test_bad_inputs_get_a_hint():
    model = small_convnet()
    x = pictures()
    with pytest.raises(ValueError, match=r"images\[None\]"):
        predict_with_tta(model, x[0])
    with pytest.raises(TypeError, match="np.stack"):
        predict_with_tta(model, list(x))
    endless = tf.data.Dataset.from_tensor_slices(x).batch(2).repeat()
    with pytest.raises(ValueError, match="infinite"):
        predict_with_tta(model, endless)
    with pytest.raises(ValueError, match=r"dataset.batch"):
        predict_with_tta(model, tf.data.Dataset.from_tensor_slices(x))
    with pytest.raises(TypeError, match="picture batches"):
        predict_with_tta(model, tf.data.Dataset.from_tensor_slices({"a": x}).batch(2))
    first, second = keras.Input((12, 12, 3)), keras.Input((12, 12, 3))
    two_inputs = keras.Model([first, second], keras.layers.Add()([first, second]))
    with pytest.raises(ValueError, match="one input"):
        predict_with_tta(two_inputs, x)
