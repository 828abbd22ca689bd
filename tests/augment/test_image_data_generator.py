"""ImageDataGeneratorAugmentation / from_image_data_generator: the legacy arguments."""

import keras
import numpy as np
import pytest

from keras_smalldata.augment import (
    ImageDataGeneratorAugmentation,
    RandomAffine,
    RandomBrightnessMultiplier,
    RandomChannelShift,
    from_image_data_generator,
)
from tests.augment._helpers import legacy_warp, smooth_picture

CLASSIC = dict(
    rotation_range=40,
    width_shift_range=0.2,
    height_shift_range=0.2,
    shear_range=0.2,
    zoom_range=0.2,
    horizontal_flip=True,
    fill_mode="nearest",
)


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _names(layer):
    return [type(sublayer).__name__ for sublayer in layer.layers]


def test_builds_only_the_layers_it_needs():
    assert _names(from_image_data_generator(**CLASSIC)) == ["RandomAffine"]
    layer = from_image_data_generator(
        **CLASSIC,
        channel_shift_range=10.0,
        brightness_range=[0.8, 1.2],
        rescale=1 / 255,
    )
    assert _names(layer) == [
        "RandomAffine",
        "RandomChannelShift",
        "RandomBrightnessMultiplier",
        "Rescaling",
    ]
    affine, shift, brightness, rescaling = layer.layers
    assert affine.rotation_range == 40 and affine.fill_mode == "nearest"
    assert affine.width_shift_range == 0.2 and affine.horizontal_flip
    assert shift.intensity_range == 10.0
    assert brightness.brightness_range == [0.8, 1.2]
    assert rescaling.scale == pytest.approx(1 / 255)
    # rescale None or 0 means no rescaling, as in ImageDataGenerator.
    assert _names(from_image_data_generator(rescale=0)) == ["RandomAffine"]


def _allowed_shift(shift, size):
    """ImageDataGenerator's reading of a shift range: (values or None, bound)."""
    if isinstance(shift, float):
        return None, shift * size if shift < 1 else shift
    if isinstance(shift, int):
        values = {sign * v for v in range(shift) for sign in (-1, 1)}
        return values, None
    values = [float(v) for v in shift]
    scale = size if max(values) < 1 else 1
    return {round(sign * v * scale, 4) for v in values for sign in (-1, 1)}, None


@pytest.mark.parametrize(
    "shift", [0.2, 12.0, 4, [0, 3, 6], (0.1, 0.2), np.array([2, 4])]
)
def test_every_shift_form_augments_like_image_data_generator(shift):
    """The whole layer against tf_keras's own functions, picture by picture.

    The layer's draws are read back from a twin layer with the same seed; the
    expected pictures are computed from them with tf_keras's
    apply_affine_transform and apply_channel_shift, then the float brightness
    and the rescale.
    """
    from tf_keras.preprocessing.image import apply_channel_shift

    size = 32
    pictures = np.stack([smooth_picture(size, size, seed=s) for s in range(6)])
    kwargs = dict(
        rotation_range=40, width_shift_range=shift, height_shift_range=shift,
        shear_range=10, zoom_range=0.2, horizontal_flip=True,
        channel_shift_range=15.0, brightness_range=(0.7, 1.3), rescale=1 / 255,
        seed=11,
    )  # fmt: skip
    out = _numpy(from_image_data_generator(**kwargs)(pictures, training=True))
    affine, channel_shift, brightness, _ = from_image_data_generator(**kwargs).layers
    drawn = {k: _numpy(v) for k, v in affine.get_random_transformation(pictures).items()}
    deltas = _numpy(channel_shift.get_random_transformation(pictures)["intensity"])
    factors = _numpy(brightness.get_random_transformation(pictures)["factor"])

    values, bound = _allowed_shift(shift, size)
    for key in ("shift_x", "shift_y"):
        if values is None:
            assert np.abs(drawn[key]).max() <= bound + 1e-4
        else:
            assert set(np.round(drawn[key].astype("float64"), 4).tolist()) <= values
    for i, picture in enumerate(pictures):
        expected = legacy_warp(
            picture, *(drawn[k][i] for k in
                       ("rotation", "shift_x", "shift_y", "shear", "zoom_x", "zoom_y")),
        )  # fmt: skip
        if drawn["horizontal_flip"][i]:
            expected = expected[:, ::-1]
        expected = apply_channel_shift(expected, deltas[i], channel_axis=2)
        expected = np.clip(expected * factors[i], 0, 255) / 255
        np.testing.assert_allclose(out[i], expected, atol=0.05 / 255)
    assert np.abs(out - pictures / 255).mean() > 0.01  # something happened


def test_cval_and_interpolation_order_map_to_the_affine_layer():
    layer = from_image_data_generator(
        fill_mode="constant", cval=9.0, interpolation_order=0
    )
    assert layer.affine.fill_value == 9.0 and layer.affine.interpolation == "nearest"
    assert from_image_data_generator().affine.interpolation == "bilinear"
    with pytest.raises(ValueError, match="interpolation_order"):
        from_image_data_generator(interpolation_order=3)


def test_rescale_is_the_only_thing_done_at_inference():
    pictures = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3)).astype("uint8")
    layer = from_image_data_generator(
        **CLASSIC, channel_shift_range=20.0, rescale=1 / 255
    )
    out = keras.ops.convert_to_numpy(layer(pictures, training=False))
    np.testing.assert_allclose(out, pictures / 255.0, rtol=1e-6)
    out = keras.ops.convert_to_numpy(layer(pictures, training=True))
    assert out.min() >= 0 and out.max() <= 1.0


@pytest.mark.parametrize(
    "argument, value, advice",
    [
        ("featurewise_center", True, "Normalization"),
        ("featurewise_std_normalization", True, "Normalization"),
        ("samplewise_center", True, "per_image_standardization"),
        ("samplewise_std_normalization", True, "per_image_standardization"),
        ("zca_whitening", True, "svd"),
        ("preprocessing_function", lambda x: x, "preprocess_input"),
        ("validation_split", 0.2, "image_dataset_from_directory"),
    ],
)
def test_unsupported_arguments_say_what_to_do_instead(argument, value, advice):
    with pytest.raises(ValueError, match=argument) as info:
        from_image_data_generator(**{argument: value})
    assert advice in str(info.value)


def test_data_format_and_dtype_keep_their_image_data_generator_meaning():
    pictures = np.random.default_rng(0).integers(0, 256, (2, 3, 16, 12)).astype("uint8")
    layer = from_image_data_generator(
        rotation_range=30, rescale=0.5, data_format="channels_first", dtype="float16"
    )
    assert layer.affine.data_format == "channels_first"
    out = layer(pictures, training=True)
    assert tuple(out.shape) == (2, 3, 16, 12)
    assert keras.backend.standardize_dtype(out.dtype) == "float16"
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer(pictures, training=False)), pictures * 0.5
    )


def test_unsupported_arguments_at_their_defaults_are_accepted():
    """An ImageDataGenerator(...) call copied with its default values still works."""
    layer = from_image_data_generator(
        featurewise_center=False,
        samplewise_center=False,
        featurewise_std_normalization=False,
        samplewise_std_normalization=False,
        zca_whitening=False,
        zca_epsilon=1e-6,
        preprocessing_function=None,
        data_format=keras.config.image_data_format(),
        validation_split=0.0,
        dtype="float32",
        **CLASSIC,
    )
    assert _names(layer) == ["RandomAffine"]


def test_unknown_argument_suggests_the_right_spelling():
    with pytest.raises(TypeError, match="rotation_range"):
        from_image_data_generator(rotation_rang=20)
    with pytest.raises(TypeError, match="unknown argument"):
        from_image_data_generator(contrast=0.5)


@pytest.mark.parametrize(
    "kwargs, error, argument",
    [
        (dict(rotation_range=-10), ValueError, "rotation_range"),
        (dict(zoom_range=0), None, None),
        (dict(zoom_range=1.5), ValueError, "zoom_range"),
        (dict(width_shift_range=-0.1), ValueError, "width_shift_range"),
        (dict(fill_mode="edge"), ValueError, "fill_mode"),
        (dict(brightness_range=1.2), ValueError, "brightness_range"),
        (dict(channel_shift_range=-5), ValueError, "channel_shift_range"),
        (dict(rescale="1/255"), TypeError, "rescale"),
        (dict(value_range=(255, 0)), ValueError, "value_range"),
    ],
)
def test_bad_values_name_the_argument(kwargs, error, argument):
    if error is None:
        from_image_data_generator(**kwargs)  # zoom_range=0: no zoom, valid
        return
    with pytest.raises(error, match=argument):
        from_image_data_generator(**kwargs)


def test_reads_an_existing_image_data_generator():
    from tf_keras.preprocessing.image import ImageDataGenerator

    legacy = ImageDataGenerator(
        rescale=1 / 255, channel_shift_range=5.0, brightness_range=(0.9, 1.1), **CLASSIC
    )
    layer = from_image_data_generator(legacy, seed=3)
    assert _names(layer) == [
        "RandomAffine",
        "RandomChannelShift",
        "RandomBrightnessMultiplier",
        "Rescaling",
    ]
    affine = layer.affine
    assert isinstance(affine, RandomAffine)
    assert affine.rotation_range == 40 and affine.shear_range == 0.2
    assert affine.zoom_range == pytest.approx([0.8, 1.2])  # the generator's own form
    assert layer.seed == 3
    with pytest.raises(ValueError, match="featurewise_center"):
        from_image_data_generator(ImageDataGenerator(featurewise_center=True))
    with pytest.raises(ValueError, match="validation_split"):
        from_image_data_generator(ImageDataGenerator(validation_split=0.2))
    with pytest.raises(TypeError, match="not both"):
        from_image_data_generator(legacy, rotation_range=10)
    with pytest.raises(TypeError, match="ImageDataGenerator"):
        from_image_data_generator({"rotation_range": 10})


def test_config_reads_like_the_legacy_call_and_round_trips():
    layer = ImageDataGeneratorAugmentation(
        **CLASSIC, brightness_range=(0.5, 1.5), rescale=0.5, seed=1, name="aug"
    )
    config = layer.get_config()
    assert config["rotation_range"] == 40 and config["width_shift_range"] == 0.2
    assert config["brightness_range"] == [0.5, 1.5] and config["name"] == "aug"
    clone = ImageDataGeneratorAugmentation.from_config(config)
    assert clone.get_config() == config
    assert _names(clone) == _names(layer)


def test_sub_layers_get_distinct_seeds():
    layer = ImageDataGeneratorAugmentation(
        channel_shift_range=1.0, brightness_range=(0.9, 1.1), seed=5
    )
    seeds = [sublayer.seed for sublayer in layer.layers]
    assert len(set(seeds)) == 3
    assert isinstance(layer.layers[1], RandomChannelShift)
    assert isinstance(layer.layers[2], RandomBrightnessMultiplier)
