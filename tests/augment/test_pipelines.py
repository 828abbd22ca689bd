"""Presets, composition into one layer, and the optional keras-cv loader."""

import sys
import types

import keras
import numpy as np
import pytest

from keras_smalldata.augment import (
    PRESETS,
    ImageDataGeneratorAugmentation,
    RandomAffine,
    augmentation_pipeline,
    augmentation_preset,
    keras_cv_layer,
)


def test_flip_rotate_zoom_preset_is_the_keras_block():
    preset = augmentation_preset("flip_rotate_zoom", seed=0)
    assert isinstance(preset, keras.layers.Pipeline)
    flip, rotation, zoom = preset.layers
    assert isinstance(flip, keras.layers.RandomFlip) and flip.mode == "horizontal"
    assert isinstance(rotation, keras.layers.RandomRotation)
    assert tuple(rotation.factor) == (-0.1, 0.1)
    assert isinstance(zoom, keras.layers.RandomZoom)
    assert (
        zoom.height_factor == 0.2 and zoom.width_factor is None
    )  # same zoom on both axes


def test_image_data_generator_preset_has_the_classic_settings():
    preset = augmentation_preset("image_data_generator", seed=0, name="augment")
    assert isinstance(preset, ImageDataGeneratorAugmentation)
    assert preset.name == "augment"
    config = preset.get_config()
    expected = dict(
        rotation_range=40.0, width_shift_range=0.2, height_shift_range=0.2,
        shear_range=0.2, zoom_range=0.2, horizontal_flip=True, fill_mode="nearest",
    )  # fmt: skip
    assert {k: config[k] for k in expected} == expected
    assert sorted(PRESETS) == ["flip_rotate_zoom", "image_data_generator"]


def test_name_names_the_layer_as_everywhere_and_layer_name_still_works():
    """Issue 15, item 9: `name=` was the preset, so name="augment" raised a TypeError."""
    for preset in PRESETS:
        assert augmentation_preset(preset, name="augment").name == "augment"
    with pytest.warns(DeprecationWarning, match="name="):
        old = augmentation_preset("image_data_generator", seed=0, layer_name="augment")
    assert old.name == "augment"
    assert old.get_config() == augmentation_preset(
        "image_data_generator", seed=0, name="augment"
    ).get_config()
    with pytest.raises(TypeError, match="layer_name"):
        augmentation_preset("flip_rotate_zoom", name="a", layer_name="b")


def test_unknown_preset_suggests_the_closest_name():
    with pytest.raises(ValueError, match="Did you mean 'flip_rotate_zoom'"):
        augmentation_preset("flip_rotation_zoom")
    with pytest.raises(TypeError, match="seed"):
        augmentation_preset("flip_rotate_zoom", seed="1")


def test_pipeline_composes_layers_presets_and_lists_in_order():
    contrast = keras.layers.RandomContrast(0.3, seed=1)
    affine = RandomAffine(rotation_range=10, seed=2)
    block = augmentation_pipeline(
        "flip_rotate_zoom", [affine, [contrast]], name="block"
    )
    assert isinstance(block, keras.layers.Pipeline) and block.name == "block"
    assert [type(layer).__name__ for layer in block.layers] == [
        "Pipeline",
        "RandomAffine",
        "RandomContrast",
    ]
    pictures = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3)).astype("uint8")
    out = keras.ops.convert_to_numpy(block(pictures, training=True))
    assert out.shape == (2, 16, 16, 3) and np.abs(out - pictures).max() > 0
    # training=False reaches every layer.
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(block(pictures, training=False)), pictures, atol=1e-4
    )


def test_pipeline_rejects_what_is_not_a_layer():
    with pytest.raises(TypeError, match="Lambda"):
        augmentation_pipeline(lambda x: x)
    with pytest.raises(ValueError, match="at least one"):
        augmentation_pipeline()
    with pytest.raises(ValueError, match="preset"):
        augmentation_pipeline("rand_augment")


def test_keras_cv_layer_explains_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "keras_cv", None)  # import fails
    with pytest.raises(ImportError, match=r"keras-smalldata\[cv\]"):
        keras_cv_layer("RandAugment")


def test_keras_cv_layer_builds_the_named_layer(monkeypatch):
    fake = types.ModuleType("keras_cv")
    fake.layers = types.SimpleNamespace(
        RandAugment=lambda **kw: keras.layers.RandomContrast(**kw),
        NotALayer=lambda: object(),
    )
    monkeypatch.setitem(sys.modules, "keras_cv", fake)
    layer = keras_cv_layer("RandAugment", factor=0.2)
    assert isinstance(layer, keras.layers.RandomContrast)
    # name= goes to the layer (the class name is positional only).
    named = keras_cv_layer("RandAugment", factor=0.2, name="rand")
    assert named.name == "rand"
    assert isinstance(augmentation_pipeline(layer), keras.layers.Pipeline)
    with pytest.raises(ValueError, match="Did you mean 'RandAugment'"):
        keras_cv_layer("RandAugmnt")
    with pytest.raises(TypeError, match="Keras 3 layer"):
        keras_cv_layer("NotALayer")


def test_keras_cv_is_never_imported_at_module_level():
    import keras_smalldata.augment.pipelines as pipelines

    assert "keras_cv" not in vars(pipelines)
