"""ImageNet preprocessing inside the model, compared with keras.applications."""

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from keras_smalldata.pretrained import (
    ImageNetPreprocessing,
    PretrainedBase,
    available_architectures,
    get_architecture,
)

# A known input: pure red, green, blue, black and white pixels.
KNOWN = np.array(
    [[[255, 0, 0], [0, 255, 0], [0, 0, 255], [0, 0, 0], [255, 255, 255]]], dtype="float32"
)[None]


def _ours(mode, x):
    return keras.ops.convert_to_numpy(ImageNetPreprocessing(mode)(x))


def test_known_values_by_hand():
    red = KNOWN[0, 0, 0]
    # caffe: BGR order, ImageNet means subtracted, no scaling.
    np.testing.assert_allclose(_ours("caffe", KNOWN)[0, 0, 0], [-103.939, -116.779, 255 - 123.68], rtol=1e-6)
    np.testing.assert_allclose(_ours("tf", KNOWN)[0, 0, 0], red / 127.5 - 1)
    np.testing.assert_allclose(
        _ours("torch", KNOWN)[0, 0, 0],
        (red / 255 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225]),
        rtol=1e-6,
    )
    np.testing.assert_array_equal(_ours("none", KNOWN), KNOWN)


@pytest.mark.parametrize("name", available_architectures())
def test_each_family_matches_its_preprocess_input(name):
    spec = get_architecture(name)
    expected = np.asarray(spec.preprocess_input(KNOWN.copy()))
    np.testing.assert_allclose(_ours(spec.preprocessing, KNOWN), expected, rtol=1e-5, atol=1e-4)


@settings(max_examples=25, deadline=None)
@given(
    pictures=arrays(
        np.float32, st.tuples(st.integers(1, 2), st.integers(1, 5), st.integers(1, 5), st.just(3)),
        elements=st.floats(0, 255, width=32),
    ),
    mode=st.sampled_from(["caffe", "tf", "torch"]),
)
def test_matches_imagenet_utils_on_any_picture(pictures, mode):
    expected = keras.applications.imagenet_utils.preprocess_input(pictures.copy(), mode=mode)
    np.testing.assert_allclose(_ours(mode, pictures), expected, rtol=1e-5, atol=1e-4)


def test_integer_pictures_give_floats():
    out = ImageNetPreprocessing("tf")(KNOWN.astype("uint8"))
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out), KNOWN / 127.5 - 1, atol=1e-6)


def test_bad_mode_names_the_accepted_ones():
    with pytest.raises(ValueError, match=r"`mode` must be one of \['caffe', 'tf', 'torch', 'none'\]"
                                          r".*Received: mode='imagenet'"):
        ImageNetPreprocessing("imagenet")


def test_config_round_trip_and_dataset_map():
    import tensorflow as tf

    layer = ImageNetPreprocessing("caffe", name="prep")
    clone = ImageNetPreprocessing.from_config(layer.get_config())
    assert clone.mode == "caffe" and clone.name == "prep"
    ds = tf.data.Dataset.from_tensor_slices(KNOWN).batch(1).map(layer)
    np.testing.assert_allclose(next(iter(ds)).numpy(), _ours("caffe", KNOWN), rtol=1e-6)
    # Integer pictures, as image_dataset_from_directory can give, under every backend.
    for mode in ("tf", "torch", "none"):
        ds = tf.data.Dataset.from_tensors(KNOWN.astype("uint8")).map(ImageNetPreprocessing(mode))
        out = next(iter(ds))
        assert out.dtype == tf.float32
        np.testing.assert_allclose(out.numpy(), _ours(mode, KNOWN), rtol=1e-6, atol=1e-6)


def test_base_equals_keras_model_fed_with_preprocess_input(vgg16, pictures):
    """The base on 0-255 pictures == keras.applications.VGG16 on preprocess_input(pictures)."""
    assert isinstance(vgg16.layers[1], ImageNetPreprocessing)
    assert vgg16.layers[1].mode == "caffe"
    plain = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    plain.set_weights(vgg16.get_weights())
    expected = plain.predict(keras.applications.vgg16.preprocess_input(pictures.copy()), verbose=0)
    np.testing.assert_allclose(vgg16.predict(pictures, verbose=0), expected, rtol=1e-4, atol=1e-3)
    # The classic mistake, 0-1 pictures, gives something else entirely. The
    # outputs of a random VGG16 are small, so the test compares the size of the
    # difference with the size of the outputs (a fixed atol flaked).
    wrong = vgg16.predict(pictures / 255.0, verbose=0)
    assert np.mean(np.abs(wrong - expected)) > 0.1 * np.mean(np.abs(expected))


def test_tf_family_base_matches_too():
    base = PretrainedBase("mobilenetv2", input_shape=(32, 32, 3), weights=None,
                          application_kwargs={"alpha": 0.35})
    assert base.layers[1].mode == "tf"
    plain = keras.applications.MobileNetV2(
        include_top=False, weights=None, input_shape=(32, 32, 3), alpha=0.35
    )
    plain.set_weights(base.get_weights())
    x = np.random.default_rng(1).uniform(0, 255, size=(2, 32, 32, 3)).astype("float32")
    expected = plain(keras.applications.mobilenet_v2.preprocess_input(x.copy()), training=False)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(base(x, training=False)),
        keras.ops.convert_to_numpy(expected), rtol=1e-4, atol=1e-4,
    )


def test_preprocessing_can_be_forced_off(pictures):
    base = PretrainedBase("vgg16", input_shape=(32, 32, 3), weights=None, preprocessing="none")
    assert base.layers[1].mode == "none"
    assert base.get_config()["preprocessing"] == "none"
    with pytest.raises(ValueError, match="preprocessing='bgr'"):
        PretrainedBase("vgg16", input_shape=(32, 32, 3), weights=None, preprocessing="bgr")


@pytest.mark.parametrize("mode, per_channel", [("torch", "mean and std"), ("caffe", "mean")])
@pytest.mark.parametrize("channels", [4, 1])
def test_per_channel_modes_refuse_other_than_rgb_pictures(mode, per_channel, channels):
    """Issue 23: ImageNetPreprocessing("torch") on RGBA pictures failed in a broadcast."""
    layer = ImageNetPreprocessing(mode)
    pictures = np.zeros((2, 8, 8, channels), "float32")
    with pytest.raises(ValueError) as info:
        layer(pictures)
    message = str(info.value)
    assert f"ImageNetPreprocessing('{mode}') needs RGB pictures, 3 channels" in message
    assert f"one ImageNet {per_channel} per channel" in message
    assert f"Received: pictures of shape (2, 8, 8, {channels}) ({channels} channels)" in message
    assert "pictures[..., :3]" in message and "color_mode='rgb'" in message
    with pytest.raises(ValueError, match="needs RGB pictures"):  # building a model, too
        inputs = keras.Input((8, 8, channels))
        keras.Model(inputs, layer(inputs))


def test_tf_and_none_modes_take_any_channels():
    pictures = np.full((1, 2, 2, 4), 255.0, "float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(ImageNetPreprocessing("tf")(pictures)), 1.0
    )
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(ImageNetPreprocessing("none")(pictures)), 255.0
    )
