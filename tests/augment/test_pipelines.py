"""Presets and composition into one layer."""

import warnings

import keras
import numpy as np
import pytest

from keras_smalldata.augment import (
    PRESETS,
    ImageDataGeneratorAugmentation,
    RandomAffine,
    augmentation_pipeline,
    augmentation_preset,
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
    assert sorted(PRESETS) == ["flip_rotate_zoom", "image_data_generator", "rand_augment"]


def test_name_names_the_layer_and_options_are_keyword_only():
    """Issue 15, item 9: `name=` was the preset, so name="augment" raised a TypeError."""
    for preset in PRESETS:
        assert augmentation_preset(preset, name="augment").name == "augment"
    with pytest.raises(TypeError):
        augmentation_preset("image_data_generator", 0)
    with pytest.raises(TypeError, match="layer_name"):
        augmentation_preset("flip_rotate_zoom", layer_name="augment")


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
    with pytest.raises(ValueError, match="Did you mean 'rand_augment'"):
        augmentation_pipeline("randaugment")


def _quiet_rand_augment(**kwargs):
    with warnings.catch_warnings():
        # Under PyTorch a warning (tested below) says the eager result is wrong.
        warnings.filterwarnings("ignore", "Under PyTorch", UserWarning)
        return augmentation_preset("rand_augment", **kwargs)


def test_rand_augment_preset_is_keras_rand_augment_for_0_255_pictures():
    preset = _quiet_rand_augment(seed=4, name="rand")
    again = _quiet_rand_augment(seed=4)
    assert isinstance(preset, keras.layers.Pipeline) and preset.name == "rand"
    (layer,) = preset.layers
    assert isinstance(layer, keras.layers.RandAugment)
    assert tuple(layer.value_range) == (0, 255) and layer.seed == 4
    assert layer.num_ops == 2
    pictures = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3)).astype("uint8")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(preset(pictures, training=False)), pictures
    )
    first = keras.ops.convert_to_numpy(preset(pictures, training=True))
    assert first.shape == pictures.shape and np.abs(first - pictures).max() > 0
    if keras.backend.backend() != "torch":
        assert first.min() >= 0 and first.max() <= 255
    again = keras.ops.convert_to_numpy(again(pictures, training=True))
    if tuple(int(part) for part in keras.__version__.split(".")[:2]) >= (3, 11):
        # Before 3.11, RandAugment chose its operations with Python's random module
        # (the preset warns), so the same seed did not give the same pictures.
        np.testing.assert_allclose(again, first, atol=1e-4)
    in_pipeline = augmentation_pipeline("rand_augment", keras.layers.RandomFlip())
    assert type(in_pipeline.layers[0].layers[0]).__name__ == "RandAugment"


@pytest.mark.skipif(
    keras.backend.backend() == "jax",
    reason="Keras' RandAugment takes about a minute to trace in tf.data under JAX",
)
def test_rand_augment_preset_in_dataset_map():
    import tensorflow as tf

    pictures = np.random.default_rng(1).integers(0, 256, (4, 16, 16, 3)).astype("uint8")
    augment = _quiet_rand_augment(seed=0)
    mapped = tf.data.Dataset.from_tensor_slices(pictures).batch(2)
    mapped = mapped.map(lambda x: augment(x, training=True)).repeat(5)
    batches = [batch.numpy() for batch in mapped]
    assert [b.shape for b in batches] == [(2, 16, 16, 3)] * 10
    assert all(b.dtype == np.float32 for b in batches)
    # In tf.data the layer computes with TensorFlow, on every backend: in range.
    assert min(b.min() for b in batches) >= 0 and max(b.max() for b in batches) <= 255
    assert any(np.abs(b - pictures[:2]).max() > 0 for b in batches[::2])


@pytest.mark.skipif(
    keras.backend.backend() == "torch",
    reason="Keras' RandAugment takes about a minute to build symbolically under PyTorch",
)
def test_rand_augment_preset_in_a_saved_model(tmp_path):
    pictures = np.random.default_rng(1).integers(0, 256, (4, 16, 16, 3)).astype("uint8")
    inputs = keras.Input((16, 16, 3))
    x = _quiet_rand_augment(seed=0, name="rand")(inputs)
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    model.save(tmp_path / "model.keras")
    reloaded = keras.models.load_model(tmp_path / "model.keras")
    assert tuple(reloaded.get_layer("rand").layers[0].get_config()["value_range"]) == (0, 255)
    np.testing.assert_allclose(
        reloaded.predict(pictures, verbose=0), model.predict(pictures, verbose=0), rtol=1e-5
    )


def test_rand_augment_preset_warns_where_keras_brightness_adds_in_place():
    """Keras' RandomBrightness does ``images += delta``: in place on PyTorch tensors."""
    probe = keras.layers.RandomBrightness(factor=(0.5, 0.5), value_range=(0, 255))
    pictures = keras.ops.zeros((1, 2, 2, 3))
    probe.transform_images(pictures, probe.get_random_transformation(pictures))
    in_place = bool(np.any(keras.ops.convert_to_numpy(pictures)))
    assert in_place == (keras.backend.backend() == "torch")  # Keras 3.15 at least
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        augmentation_preset("rand_augment")
    messages = [str(w.message) for w in caught if "Under PyTorch" in str(w.message)]
    assert len(messages) == int(in_place)


def test_rand_augment_preset_warns_on_keras_before_3_11(monkeypatch):
    monkeypatch.setattr(keras, "__version__", "3.10.0")
    with pytest.warns(UserWarning, match="Keras 3.11"):
        augmentation_preset("rand_augment")
    monkeypatch.setattr(keras, "__version__", "3.11.0")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        augmentation_preset("rand_augment")
    assert not [w for w in caught if "3.11" in str(w.message)]
    monkeypatch.delattr(keras.layers, "RandAugment")
    with pytest.raises(ImportError, match="keras.layers.RandAugment"):
        augmentation_preset("rand_augment")

