"""RandomChannelShift and RandomBrightnessMultiplier against the legacy functions."""

import keras
import numpy as np
import pytest

from keras_smalldata.augment import RandomBrightnessMultiplier, RandomChannelShift
from tests.augment._helpers import random_picture


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def test_channel_shift_matches_legacy_apply_channel_shift():
    from tf_keras.preprocessing.image import apply_channel_shift

    rng = np.random.default_rng(0)
    pictures = rng.uniform(30, 200, (3, 16, 16, 3)).astype("float32")
    intensities = np.array([25.0, -40.0, 3.5], "float32")
    layer = RandomChannelShift(50.0)
    out = _numpy(layer.transform_images(pictures, {"intensity": intensities}))
    for i in range(3):
        reference = apply_channel_shift(pictures[i], intensities[i], channel_axis=2)
        np.testing.assert_allclose(out[i], reference, atol=1e-4)


def test_channel_shift_clips_to_each_pictures_own_range():
    first = np.linspace(10, 100, 16 * 16 * 3).reshape(16, 16, 3)
    second = np.linspace(0.5, 1.5, 16 * 16 * 3).reshape(16, 16, 3)
    pictures = np.stack([first, second]).astype("float32")
    out = _numpy(
        RandomChannelShift(1.0).transform_images(
            pictures, {"intensity": np.array([30.0, 0.25])}
        )
    )
    np.testing.assert_allclose(out[0], np.clip(first + 30, 10, 100), rtol=1e-6)
    np.testing.assert_allclose(out[1], np.clip(second + 0.25, 0.5, 1.5), rtol=1e-6)


def test_channel_shift_draws_one_delta_per_picture_in_range():
    layer = RandomChannelShift(20.0, seed=0)
    draws = _numpy(
        layer.get_random_transformation(np.zeros((5000, 2, 2, 3)))["intensity"]
    )
    assert draws.shape == (5000,)
    assert np.abs(draws).max() <= 20.0 and np.abs(draws).max() > 19.8
    assert abs(draws.mean()) < 5 * 40 / np.sqrt(12 * 5000)
    # One delta per picture, the same for every channel and pixel (no clipping here).
    pictures = np.full((4, 8, 8, 3), 100.0, "float32")
    pictures[:, 0, 0, :] = 0.0
    pictures[:, 0, 1, :] = 255.0
    out = _numpy(layer(pictures, training=True))
    deltas = out[:, 4, 4, :] - 100.0
    np.testing.assert_allclose(deltas, deltas[:, :1] * np.ones((1, 3)), atol=1e-4)
    assert len(np.unique(np.round(deltas[:, 0], 4))) == 4


def test_brightness_matches_legacy_on_0_255_pictures_up_to_rounding():
    from tf_keras.preprocessing.image import apply_brightness_shift

    picture = np.round(random_picture(16, 16, seed=1))
    layer = RandomBrightnessMultiplier((0.5, 1.5))
    for factor in (0.6, 1.0, 1.37):
        ours = _numpy(
            layer.transform_images(picture[None], {"factor": np.array([factor])})
        )[0]
        legacy = apply_brightness_shift(picture, factor, scale=False)
        # Legacy went through an 8-bit PIL picture: whole numbers, clipped at 255.
        assert np.abs(ours - legacy).max() <= 1.0
        assert ours.max() <= 255.0


def test_brightness_keeps_0_1_pictures_that_legacy_destroyed():
    from tf_keras.preprocessing.image import apply_brightness_shift

    picture = np.random.default_rng(2).uniform(0, 1, (8, 8, 3)).astype("float32")
    legacy = apply_brightness_shift(picture, 1.2, scale=False)
    assert set(np.unique(legacy)) <= {0.0, 1.0}  # the documented legacy loss
    layer = RandomBrightnessMultiplier((0.5, 1.5), value_range=(0, 1))
    ours = _numpy(layer.transform_images(picture[None], {"factor": np.array([1.2])}))[0]
    np.testing.assert_allclose(ours, np.clip(picture * 1.2, 0, 1), rtol=1e-6)


def test_brightness_scales_from_the_low_end_of_the_value_range():
    picture = np.array([-1.0, -0.5, 0.0, 0.5, 1.0], "float32").reshape(1, 1, 5, 1)
    layer = RandomBrightnessMultiplier((0.5, 1.5), value_range=(-1, 1))
    out = _numpy(layer.transform_images(picture, {"factor": np.array([0.5])}))
    np.testing.assert_allclose(out.ravel(), [-1.0, -0.75, -0.5, -0.25, 0.0])
    out = _numpy(layer.transform_images(picture, {"factor": np.array([1.5])}))
    np.testing.assert_allclose(out.ravel(), [-1.0, -0.25, 0.5, 1.0, 1.0])


def test_brightness_draws_per_picture_in_range():
    layer = RandomBrightnessMultiplier((0.7, 1.3), seed=0)
    draws = _numpy(layer.get_random_transformation(np.zeros((5000, 2, 2, 3)))["factor"])
    assert draws.min() >= 0.7 and draws.max() <= 1.3
    assert draws.min() < 0.71 and draws.max() > 1.29


@pytest.mark.parametrize(
    "layer_class, kwargs",
    [
        (RandomChannelShift, dict(intensity_range=30.0)),
        (RandomBrightnessMultiplier, dict(brightness_range=(0.5, 1.5))),
    ],
)
def test_identity_at_inference_seed_and_unbatched(layer_class, kwargs):
    pictures = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3)).astype("uint8")
    layer = layer_class(**kwargs, seed=3)
    out = layer(pictures, training=False)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    np.testing.assert_array_equal(_numpy(out), pictures.astype("float32"))
    a = _numpy(layer_class(**kwargs, seed=3)(pictures, training=True))
    b = _numpy(layer_class(**kwargs, seed=3)(pictures, training=True))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - pictures).max() > 0
    assert a.min() >= 0 and a.max() <= 255
    assert tuple(layer(pictures[0], training=True).shape) == (8, 8, 3)


@pytest.mark.parametrize(
    "build, error, argument",
    [
        (lambda: RandomChannelShift(-1.0), ValueError, "intensity_range"),
        # Beyond float32: the pictures would turn to inf or NaN.
        (lambda: RandomChannelShift(1e19), ValueError, "intensity_range"),
        (
            lambda: RandomBrightnessMultiplier((float("nan"), 1.2)),
            ValueError,
            "brightness_range",
        ),
        (
            lambda: RandomBrightnessMultiplier((0.5, 1e19)),
            ValueError,
            "brightness_range",
        ),
        (lambda: RandomChannelShift("20"), TypeError, "intensity_range"),
        (lambda: RandomBrightnessMultiplier(0.2), ValueError, "brightness_range"),
        (
            lambda: RandomBrightnessMultiplier((1.2, 0.8)),
            ValueError,
            "brightness_range",
        ),
        (
            lambda: RandomBrightnessMultiplier((-0.1, 1.0)),
            ValueError,
            "brightness_range",
        ),
        (
            lambda: RandomBrightnessMultiplier(value_range=(1, 0)),
            ValueError,
            "value_range",
        ),
        (
            lambda: RandomBrightnessMultiplier(value_range=255),
            TypeError,
            "value_range",
        ),
    ],
)
def test_bad_arguments_name_the_argument(build, error, argument):
    with pytest.raises(error, match=argument):
        build()


@pytest.mark.parametrize("dtype", ["float32", "uint8"])
def test_channel_shift_of_an_empty_batch_is_the_empty_batch(dtype):
    """Issue 23: an empty batch failed with "Cannot compute the min of an empty tensor"."""
    import tensorflow as tf

    layer = RandomChannelShift(20.0, seed=0)
    empty = np.zeros((0, 8, 8, 3), dtype)
    out = layer(empty, training=True)
    assert tuple(out.shape) == (0, 8, 8, 3)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    # In a model, and in tf.data, as a batch that a filter left empty.
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, RandomChannelShift(20.0, seed=0)(inputs))
    assert tuple(model(empty, training=True).shape) == (0, 8, 8, 3)
    mapped = tf.data.Dataset.from_tensors(empty).map(lambda x: layer(x, training=True))
    assert [tuple(batch.shape) for batch in mapped] == [(0, 8, 8, 3)]
    # The layer still shifts the next batch it sees.
    pictures = np.random.default_rng(0).uniform(0, 255, (3, 8, 8, 3)).astype("float32")
    assert not np.allclose(_numpy(layer(pictures, training=True)), pictures)
