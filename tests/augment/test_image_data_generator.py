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

CLASSIC = dict(
    rotation_range=40,
    width_shift_range=0.2,
    height_shift_range=0.2,
    shear_range=0.2,
    zoom_range=0.2,
    horizontal_flip=True,
    fill_mode="nearest",
)


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


@pytest.mark.parametrize(
    "shift", [0.2, 12.0, 4, [0, 3, 6], (0.1, 0.2), np.array([2, 4])]
)
def test_all_shift_forms_are_accepted(shift):
    layer = from_image_data_generator(width_shift_range=shift, height_shift_range=shift)
    out = layer(np.zeros((2, 16, 16, 3), "uint8"), training=True)
    assert tuple(out.shape) == (2, 16, 16, 3)


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
        ("data_format", "channels_first", "set_image_data_format"),
        ("dtype", "float16", "keras.ops.cast"),
    ],
)
def test_unsupported_arguments_say_what_to_do_instead(argument, value, advice):
    with pytest.raises(ValueError, match=argument) as info:
        from_image_data_generator(**{argument: value})
    assert advice in str(info.value)


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
    assert affine._zoom_bounds == pytest.approx((0.8, 1.2))
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
