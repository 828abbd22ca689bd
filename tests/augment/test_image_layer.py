"""The picture layers' base: public Keras API, what they take and refuse, tf.data everywhere."""

import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_smalldata.augment
from keras_smalldata.augment import (
    ImageDataGeneratorAugmentation,
    RandomAffine,
    RandomBrightnessMultiplier,
    RandomChannelShift,
)

LAYERS = {
    "affine": lambda: RandomAffine(rotation_range=30, zoom_range=0.2, seed=0),
    "channel_shift": lambda: RandomChannelShift(20.0, seed=1),
    "brightness": lambda: RandomBrightnessMultiplier((0.5, 1.5), seed=2),
    "image_data_generator": lambda: ImageDataGeneratorAugmentation(
        rotation_range=30, channel_shift_range=10.0, seed=3
    ),
}


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _pictures(n=3, size=12, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, size, size, 3)).astype("float32")


def test_the_package_uses_public_keras_api_only():
    folder = pathlib.Path(keras_smalldata.augment.__file__).parent
    for path in folder.glob("*.py"):
        source = path.read_text()
        assert "keras.src" not in source and "tensorflow.python" not in source, path
    public_bases = set(keras.layers.Layer.__mro__)
    for name in sorted(LAYERS):
        bases = type(LAYERS[name]()).__mro__
        private = [c for c in bases if c.__module__.startswith("keras.") and c not in public_bases]
        assert private == [], name


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_get_config_has_the_base_layer_settings_and_round_trips(name):
    layer = LAYERS[name]()
    config = layer.get_config()
    assert {"name", "dtype", "trainable", "seed"} <= set(config)
    assert config["name"] == layer.name and config["trainable"] is True
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    assert clone.dtype_policy.name == layer.dtype_policy.name == "float32"


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_one_layer_takes_batches_and_single_pictures_in_either_order(name):
    pictures = _pictures()
    for inputs in ([pictures, pictures[0], pictures[:2]], [pictures[0], pictures]):
        layer = LAYERS[name]()
        for x in inputs:
            out = layer(x, training=True)
            assert tuple(out.shape) == x.shape
            assert np.abs(_numpy(out) - x).max() > 0


BAD_INPUTS = [
    ("text", "cat.jpg", TypeError, ["not text", "load_img"]),
    ("file names", np.array(["a.jpg", "b.jpg"]), TypeError, ["received dtype", "uint8"]),
    ("bools", np.zeros((4, 4, 3), bool), TypeError, ["dtype=bool"]),
    ("2-D", np.zeros((32, 32), "float32"), ValueError, ["(32, 32)", "x[..., None]"]),
    ("5-D", np.zeros((2, 2, 8, 8, 3), "float32"), ValueError, ["(2, 2, 8, 8, 3)"]),
    ("0 pixels", np.zeros((2, 0, 8, 3), "float32"), ValueError, ["at least one pixel"]),
    ("dict", {"labels": np.zeros(2)}, ValueError, ["'images'", "['labels']"]),
]


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize(
    "bad, error, words", [case[1:] for case in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS]
)
def test_inputs_that_are_not_pictures_get_a_clear_error(name, bad, error, words):
    with pytest.raises(error) as info:
        LAYERS[name]()(bad, training=True)
    message = str(info.value)
    assert "Exception encountered" not in message
    assert type(LAYERS[name]()).__name__ in message
    for word in words:
        assert word in message


def test_clear_errors_in_tf_data_and_in_a_functional_model():
    layer = RandomAffine(rotation_range=10)
    names = tf.data.Dataset.from_tensor_slices(["a.jpg", "b.jpg"])
    with pytest.raises(TypeError, match="received dtype=string"):
        names.map(layer)
    with pytest.raises(ValueError, match=r"received shape \(None, 32\)"):
        layer(keras.Input((32,)))


def test_mapping_image_label_pairs_says_how_to_map_the_images_only():
    layer = RandomAffine(rotation_range=10)
    pairs = tf.data.Dataset.from_tensor_slices((_pictures(2), np.array([0, 1]))).batch(2)
    with pytest.raises(TypeError, match=r"lambda x, y: \(layer\(x, training=True\), y\)"):
        pairs.map(layer)
    images, labels = next(iter(pairs.map(lambda x, y: (layer(x, training=True), y))))
    assert tuple(images.shape) == (2, 12, 12, 3) and tuple(labels.shape) == (2,)


def test_tf_data_parallel_map_draws_once_per_picture():
    """Every picture of every batch gets its own draw, also with parallel calls."""
    layer = RandomBrightnessMultiplier((0.5, 1.5), seed=3)
    constant = np.full((4, 2, 2, 1), 100.0, "float32")
    dataset = (
        tf.data.Dataset.from_tensors(constant)
        .repeat(50)
        .map(layer, num_parallel_calls=4)
    )
    factors = np.concatenate([np.asarray(batch)[:, 0, 0, 0] for batch in dataset])
    assert factors.shape == (200,)
    assert len(np.unique(factors)) == 200
    assert 50 < factors.min() and factors.max() < 150


def test_tf_data_draws_repeat_with_the_seed_and_advance_each_epoch():
    pictures = _pictures(4, seed=1)

    def epochs(layer, count=2):
        dataset = tf.data.Dataset.from_tensor_slices(pictures).batch(2).map(layer)
        return [np.concatenate([np.asarray(b) for b in dataset]) for _ in range(count)]

    first = epochs(RandomAffine(rotation_range=40, zoom_range=0.2, seed=5))
    again = epochs(RandomAffine(rotation_range=40, zoom_range=0.2, seed=5))
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert np.abs(first[0] - first[1]).mean() > 1.0
    assert first[0].dtype == np.float32


# What a seed reproduces (docs/augmentation.md, "What a seed reproduces").


def _model_draws(layer, pictures):
    inputs = keras.Input(pictures.shape[1:])
    model = keras.Model(inputs, layer(inputs))
    return [_numpy(model(pictures, training=True)) for _ in range(2)]


def _tf_data_draws(dataset):
    return np.concatenate([np.asarray(batch) for batch in dataset])


def _mapped(layer, pictures):
    return tf.data.Dataset.from_tensor_slices(pictures).batch(2).map(
        lambda x: layer(x, training=True)
    )


@pytest.mark.parametrize("name", ["affine", "channel_shift", "brightness"])
def test_reseed_repeats_the_draws_in_a_model(name):
    pictures = _pictures(4, seed=3)
    layer = LAYERS[name]()
    first = _model_draws(layer, pictures)
    assert not np.allclose(first[0], first[1])  # the draws advance from call to call
    layer.reseed(layer.seed)
    np.testing.assert_allclose(_model_draws(layer, pictures), first, rtol=1e-6)
    np.testing.assert_allclose(_model_draws(LAYERS[name](), pictures), first, rtol=1e-6)
    layer.reseed(layer.seed + 1)
    assert not np.allclose(_model_draws(layer, pictures)[0], first[0])
    assert layer.get_config()["seed"] == LAYERS[name]().seed  # the config is unchanged


@pytest.mark.parametrize("name", ["affine", "channel_shift", "brightness"])
def test_reseed_repeats_the_draws_in_tf_data_also_once_traced(name):
    pictures = _pictures(4, seed=4)
    layer = LAYERS[name]()
    dataset = _mapped(layer, pictures)
    first, second = _tf_data_draws(dataset), _tf_data_draws(dataset)
    assert not np.allclose(first, second)  # each epoch draws anew
    layer.reseed(layer.seed)  # the traced pipeline draws the restarted sequence
    np.testing.assert_allclose(_tf_data_draws(dataset), first, rtol=1e-6)
    np.testing.assert_allclose(_tf_data_draws(dataset), second, rtol=1e-6)
    # A new layer with the same seed, or any layer reseeded before its first
    # tf.data draw, draws the same sequence.
    np.testing.assert_allclose(_tf_data_draws(_mapped(LAYERS[name](), pictures)), first, rtol=1e-6)
    unseeded = type(layer).from_config({**layer.get_config(), "seed": None})
    unseeded.reseed(layer.seed)
    np.testing.assert_allclose(_tf_data_draws(_mapped(unseeded, pictures)), first, rtol=1e-6)


def test_reseed_checks_the_seed_as_the_constructor_does():
    layer = RandomChannelShift(20.0, seed=0)
    with pytest.raises(TypeError, match="seed"):
        layer.reseed(1.5)
    with pytest.raises(ValueError, match="seed"):
        layer.reseed(-1)
    layer.reseed(None)  # a new random seed, as seed=None in the constructor


def test_layers_with_the_same_settings_share_a_compiled_transformation_but_not_a_layer():
    """The compiled transformation follows the layer calling it, not the first one."""
    import gc
    import weakref

    pictures = _pictures(2, size=12, seed=5)
    first = RandomAffine(rotation_range=30, seed=0)
    first(pictures, training=True)
    gone = weakref.ref(first)
    del first
    gc.collect()
    assert gone() is None  # the shared compiled function keeps no layer alive
    larger = _pictures(2, size=16, seed=5)  # a new shape: traced again, by this layer
    out = _numpy(RandomAffine(rotation_range=30, seed=0)(larger, training=True))
    reflect = _numpy(RandomAffine(rotation_range=30, fill_mode="reflect", seed=0)(larger, training=True))
    assert out.shape == (2, 16, 16, 3) and not np.allclose(out, reflect)


@pytest.mark.parametrize("dtype", ["uint8", "int32", "float16", "float32", "float64"])
def test_every_real_dtype_gives_float32_in_the_input_range(dtype):
    pictures = np.round(_pictures(2, seed=2)).astype(dtype)
    layer = RandomAffine(rotation_range=45, zoom_range=0.3, fill_mode="reflect", seed=0)
    out = layer(pictures, training=True)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    out = _numpy(out)
    assert pictures.min() - 1e-3 <= out.min() and out.max() <= pictures.max() + 1e-3
    np.testing.assert_array_equal(
        _numpy(layer(pictures, training=False)), pictures.astype("float32")
    )
