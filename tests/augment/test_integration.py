"""The layers in a Functional model, in tf.data and through a .keras round trip."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_smalldata.augment import (
    ImageDataGeneratorAugmentation,
    RandomAffine,
    RandomBrightnessMultiplier,
    RandomChannelShift,
    augmentation_pipeline,
    augmentation_preset,
)

SIZE = 24


def _as_json(config):
    """A config as a .keras file stores it (tuples become lists)."""
    return json.loads(json.dumps(config))


def _pictures(n=8, seed=0):
    return (
        np.random.default_rng(seed).integers(0, 256, (n, SIZE, SIZE, 3)).astype("uint8")
    )


LAYERS = {
    "affine": lambda: RandomAffine(
        rotation_range=40,
        width_shift_range=[2, 4],
        height_shift_range=3,
        shear_range=10,
        zoom_range=(0.8, 1.1),
        horizontal_flip=True,
        fill_mode="reflect",
        seed=1,
    ),
    "channel_shift": lambda: RandomChannelShift(30.0, seed=2),
    "brightness": lambda: RandomBrightnessMultiplier((0.6, 1.4), seed=3),
    "image_data_generator": lambda: ImageDataGeneratorAugmentation(
        rotation_range=40,
        width_shift_range=0.2,
        height_shift_range=0.2,
        shear_range=0.2,
        zoom_range=0.2,
        horizontal_flip=True,
        channel_shift_range=10.0,
        brightness_range=(0.8, 1.2),
        seed=4,
    ),
    "preset_flip_rotate_zoom": lambda: augmentation_preset("flip_rotate_zoom", seed=5),
    "pipeline": lambda: augmentation_pipeline(
        RandomAffine(rotation_range=20, seed=6),
        keras.layers.RandomContrast(0.2, seed=7),
    ),
}


@pytest.fixture(scope="module")
def trained_model_file(tmp_path_factory):
    """A small Functional model with augmentation before Rescaling, fitted and saved."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = ImageDataGeneratorAugmentation(
        rotation_range=40,
        width_shift_range=0.2,
        height_shift_range=0.2,
        shear_range=0.2,
        zoom_range=0.2,
        horizontal_flip=True,
        channel_shift_range=10.0,
        seed=0,
    )(inputs)
    x = RandomBrightnessMultiplier((0.8, 1.2), seed=1)(x)
    x = keras.layers.Rescaling(1 / 255)(x)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs, outputs)
    model.compile("rmsprop", "binary_crossentropy")
    pictures = _pictures(16)
    labels = np.arange(16) % 2
    history = model.fit(pictures, labels, epochs=1, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    path = tmp_path_factory.mktemp("model") / "model.keras"
    model.save(path)
    return model, path, pictures


def test_functional_model_is_deterministic_at_inference(trained_model_file):
    model, _, pictures = trained_model_file
    first = model.predict(pictures, verbose=0)
    np.testing.assert_array_equal(first, model.predict(pictures, verbose=0))


def test_functional_model_reloads_from_keras_file(trained_model_file):
    model, path, pictures = trained_model_file
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(
        loaded.predict(pictures, verbose=0),
        model.predict(pictures, verbose=0),
        atol=1e-6,
    )
    assert isinstance(loaded.layers[1], ImageDataGeneratorAugmentation)
    assert loaded.layers[1].get_config() == model.layers[1].get_config()


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_dataset_map_batched_and_unbatched(name):
    layer = LAYERS[name]()
    pictures = _pictures(6)
    batched = tf.data.Dataset.from_tensor_slices(pictures).batch(3).map(layer)
    outputs = [batch.numpy() for batch in batched]
    assert [o.shape for o in outputs] == [(3, SIZE, SIZE, 3)] * 2
    assert all(o.dtype == np.float32 for o in outputs)
    assert np.abs(np.concatenate(outputs) - pictures).max() > 0  # augmented
    single = tf.data.Dataset.from_tensor_slices(pictures).map(
        lambda x: layer(x, training=True)
    )
    assert next(iter(single)).shape == (SIZE, SIZE, 3)


def test_dataset_map_with_unknown_picture_size():
    layer = RandomAffine(rotation_range=30, width_shift_range=0.1, seed=0)
    dataset = tf.data.Dataset.from_generator(
        lambda: (np.zeros((h, w, 3), "uint8") + 100 for h, w in [(20, 30), (16, 16)]),
        output_signature=tf.TensorSpec((None, None, 3), tf.uint8),
    ).map(lambda x: layer(x, training=True))
    assert [tuple(x.shape) for x in dataset] == [(20, 30, 3), (16, 16, 3)]


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_keras_file_round_trip_keeps_config_and_seeded_draws(name, tmp_path):
    layer = LAYERS[name]()
    pictures = _pictures(4)
    inputs = keras.Input((SIZE, SIZE, 3))
    model = keras.Model(inputs, layer(inputs))
    first_draw = keras.ops.convert_to_numpy(model(pictures, training=True))
    model.save(tmp_path / "aug.keras")
    loaded = keras.models.load_model(tmp_path / "aug.keras")
    loaded_layer = loaded.layers[1]
    assert type(loaded_layer) is type(layer)
    assert _as_json(loaded_layer.get_config()) == _as_json(layer.get_config())
    # Like Keras' own random layers, the random state is not saved: a reloaded
    # layer starts again from its seed, so it repeats the first draw.
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(pictures, training=True)),
        first_draw,
        atol=1e-4,
    )
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded(pictures, training=False)),
        keras.ops.convert_to_numpy(model(pictures, training=False)),
    )
