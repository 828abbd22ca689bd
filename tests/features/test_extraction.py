"""extract_features: exact counts, order, pairing, augmentation, FeatureSet."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_smalldata.features import FeatureSet, extract_features
from keras_smalldata.pretrained.heads import classifier_model
from tests.features.conftest import conv_model, mean_model


@pytest.fixture(scope="module")
def small_model():
    return conv_model(size=16)


@pytest.fixture(scope="module")
def vgg16():
    return keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))


def _images(n, size=16, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 45), batch_size=st.integers(1, 16))
def test_arrays_give_every_sample_once_in_order(small_model, n, batch_size):
    x = _images(n)
    y = np.arange(n) * 10
    features = extract_features(small_model, (x, y), batch_size=batch_size, verbose=0)
    assert len(features) == n
    assert features.features.shape == (n, 7, 7, 4)
    np.testing.assert_array_equal(features.labels, y)
    np.testing.assert_allclose(features.features, small_model.predict(x, verbose=0), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("batch_size", [1, 7, 8, 40, 64])
def test_directory_dataset_counts_exact_for_any_batch_size(numbered_folder, batch_size):
    # 40 samples: 7 and 64 do not divide it, 1, 8 and 40 do.
    dataset = keras.utils.image_dataset_from_directory(
        numbered_folder, image_size=(12, 12), batch_size=batch_size, shuffle=False, verbose=False
    )
    features = extract_features(mean_model(), dataset, verbose=0)
    assert len(features) == 40
    values = np.rint(features.features[:, 0]).astype(int)
    np.testing.assert_array_equal(values, 3 * np.arange(40) + 5)
    np.testing.assert_array_equal(features.labels, [0] * 20 + [1] * 20)
    assert features.class_names == ["a", "b"]


def test_rebatching_a_batched_dataset(numbered_folder):
    dataset = keras.utils.image_dataset_from_directory(
        numbered_folder, image_size=(12, 12), batch_size=32, shuffle=False, verbose=False
    )
    features = extract_features(mean_model(), dataset, batch_size=6, verbose=0)
    np.testing.assert_array_equal(
        np.rint(features.features[:, 0]).astype(int), 3 * np.arange(40) + 5
    )


@pytest.mark.parametrize("batch_size", [3, 32])
def test_pairs_kept_with_a_dataset_that_reshuffles(numbered_folder, batch_size):
    # Each picture's features (its pixel value) name it; its label is its own number.
    dataset = keras.utils.image_dataset_from_directory(
        numbered_folder,
        labels=list(range(40)),
        image_size=(12, 12),
        batch_size=batch_size,
        shuffle=True,
        verbose=False,
    )
    features = extract_features(mean_model(), dataset, verbose=0)
    values = np.rint(features.features[:, 0]).astype(int)
    np.testing.assert_array_equal(values, 3 * features.labels + 5)
    assert sorted(features.labels.tolist()) == list(range(40))  # each once
    assert features.labels.tolist() != list(range(40))  # it did shuffle


def test_inferred_labels_match_pictures_under_shuffle(numbered_folder):
    dataset = keras.utils.image_dataset_from_directory(
        numbered_folder, image_size=(12, 12), batch_size=5, shuffle=True, seed=3,
        label_mode="binary", verbose=False,
    )
    features = extract_features(mean_model(), dataset, verbose=0)
    values = np.rint(features.features[:, 0]).astype(int)
    assert features.labels.shape == (40, 1) and features.labels.dtype == np.float32
    np.testing.assert_array_equal(features.labels[:, 0], (values >= 3 * 20 + 5).astype("float32"))


def test_images_only_and_unbatched_datasets(small_model):
    x = _images(23)
    expected = small_model.predict(x, verbose=0)
    batched = extract_features(small_model, tf.data.Dataset.from_tensor_slices(x).batch(5), verbose=0)
    unbatched = extract_features(small_model, tf.data.Dataset.from_tensor_slices(x), batch_size=4, verbose=0)
    array_only = extract_features(small_model, x, verbose=0)
    for result in (batched, unbatched, array_only):
        assert result.labels is None and len(result) == 23
        np.testing.assert_allclose(result.features, expected, atol=1e-5)
    pairs = extract_features(small_model, tf.data.Dataset.from_tensor_slices((x, np.arange(23))), verbose=0)
    np.testing.assert_array_equal(pairs.labels, np.arange(23))


def test_uint8_arrays_and_tensors_are_accepted(small_model):
    x = np.random.default_rng(1).integers(0, 256, (9, 16, 16, 3), dtype=np.uint8)
    expected = small_model.predict(x.astype("float32"), verbose=0)
    np.testing.assert_allclose(extract_features(small_model, x, verbose=0).features, expected, atol=1e-5)
    from_tensor = extract_features(small_model, (tf.constant(x), tf.range(9)), verbose=0)
    np.testing.assert_allclose(from_tensor.features, expected, atol=1e-5)


def test_vgg16_features_equal_predict(vgg16):
    x = _images(11, size=32, seed=2)
    features = extract_features(vgg16, (x, np.arange(11) % 2), batch_size=4, class_names=["cat", "dog"], verbose=0)
    assert features.feature_shape == (1, 1, 512)
    assert features.class_names == ["cat", "dog"]
    np.testing.assert_allclose(features.features, vgg16.predict(x, verbose=0), rtol=1e-4, atol=1e-4)


def test_augmentation_rounds_rows_labels_and_seed(numbered_folder):
    dataset = keras.utils.image_dataset_from_directory(
        numbered_folder, labels=list(range(40)), image_size=(12, 12), batch_size=8,
        shuffle=False, verbose=False,
    )
    model = keras.Sequential([keras.Input((12, 12, 3)), keras.layers.Flatten()])
    flip = keras.layers.RandomFlip("horizontal", seed=1)
    result = extract_features(model, dataset, augmentation=flip, augment_rounds=2, seed=5, verbose=0)
    assert len(result) == 120
    np.testing.assert_array_equal(result.labels, np.tile(np.arange(40), 3))
    # Constant pictures: a flip leaves them unchanged, so every round equals the first.
    np.testing.assert_array_equal(result.features[40:80], result.features[:40])

    x = _images(30, size=12, seed=4)
    augment = keras.Sequential([keras.layers.RandomFlip(), keras.layers.RandomRotation(0.2)])
    kwargs = dict(augmentation=augment, augment_rounds=2, seed=7, verbose=0)
    first = extract_features(model, (x, np.arange(30)), **kwargs)
    augment(x[:4], training=True)  # moves the layers' generators on
    again = extract_features(model, (x, np.arange(30)), **kwargs)
    np.testing.assert_array_equal(first.features, again.features)
    np.testing.assert_allclose(first.features[:30], x.reshape(30, -1), atol=1e-4)  # plain pass
    assert not np.allclose(first.features[30:60], first.features[:30])  # augmented
    assert not np.allclose(first.features[30:60], first.features[60:])  # new draws per round
    other = extract_features(model, (x, np.arange(30)), **{**kwargs, "seed": 8})
    assert not np.allclose(other.features[30:], first.features[30:])
    only = extract_features(model, x, augmentation=augment, augment_rounds=1, include_original=False, verbose=0)
    assert len(only) == 30


def test_augmentation_function_is_applied(small_model):
    x = _images(6)
    doubled = extract_features(
        small_model, x, augmentation=lambda images: images[:, ::-1], augment_rounds=1, verbose=0
    )
    np.testing.assert_allclose(
        doubled.features[6:], small_model.predict(x[:, ::-1], verbose=0), atol=1e-5
    )


def test_feature_set_as_dataset_and_numpy():
    features = np.arange(50 * 3, dtype="float32").reshape(50, 3)
    labels = np.arange(50) % 2
    feature_set = FeatureSet(features, labels, ["even", "odd"])
    seen = []
    for x, y in feature_set.as_dataset(batch_size=8, shuffle=True, seed=0):
        assert x.shape[1:] == (3,)
        np.testing.assert_array_equal(y.numpy(), (x.numpy()[:, 0] // 3) % 2)
        seen.extend((x.numpy()[:, 0] // 3).astype(int).tolist())
    assert sorted(seen) == list(range(50)) and seen != list(range(50))
    x, y = feature_set.numpy()
    assert type(x) is np.ndarray and np.array_equal(x, features) and np.array_equal(y, labels)
    unlabelled = FeatureSet(features)
    batches = list(unlabelled.as_dataset(batch_size=50))
    assert len(batches) == 1 and np.array_equal(batches[0].numpy(), features)
    assert unlabelled.numpy()[1] is None
    with pytest.raises(ValueError, match="one label per row"):
        FeatureSet(features, labels[:3])
    with pytest.raises(ValueError, match="batch_size"):
        feature_set.as_dataset(batch_size=0)
    with pytest.raises(TypeError):
        feature_set.as_dataset(8, True)  # shuffle and seed are keyword-only


def test_classifier_trains_on_features(small_model):
    x = _images(40)
    y = (x.mean(axis=(1, 2, 3)) > 127.5).astype("float32")
    features = extract_features(small_model, (x, y), verbose=0)
    head = classifier_model(features.feature_shape, hidden_units=8)
    head.compile("rmsprop", "binary_crossentropy")
    history = head.fit(features.as_dataset(batch_size=8, shuffle=True), epochs=1, verbose=0, shuffle=False)
    assert len(history.history["loss"]) == 1
    assert head.predict(features.features, verbose=0).shape == (40, 1)


def test_progress_bar_reports_samples_per_second(small_model, capsys):
    extract_features(small_model, _images(5), batch_size=2, verbose=1)
    out = capsys.readouterr().out
    assert "5/5" in out and "samples/s" in out
    extract_features(small_model, _images(5), verbose=0)
    assert capsys.readouterr().out == ""


def test_batches_are_never_padded():
    # A model whose rows depend on each other (each row minus the batch mean):
    # the last, shorter batch must run as it is, not padded to the batch size.
    inputs = keras.Input((8, 8, 3))
    centred = keras.layers.Lambda(lambda x: x - keras.ops.mean(x, axis=0, keepdims=True))(inputs)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(centred))
    x = _images(7, size=8)
    means = x.mean(axis=(1, 2))
    expected = np.concatenate([means[:4] - means[:4].mean(0), means[4:] - means[4:].mean(0)])
    result = extract_features(model, x, batch_size=4, verbose=0)
    np.testing.assert_allclose(result.features, expected, rtol=1e-4, atol=1e-3)


def _softmax_model():
    inputs = keras.Input((4, 4, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    outputs = keras.layers.Dense(
        3, activation="softmax", name="out", kernel_initializer=keras.initializers.GlorotUniform(0)
    )(x)
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("cache", [False, True])
def test_compiled_function_follows_a_changed_activation(tmp_path, cache):
    # Issue 23, case 1: after the activation changed, the old compiled
    # function still ran (rows still summed to 1).
    model = _softmax_model()
    x = _images(6, size=4) / 255.0
    kernel, bias = model.get_layer("out").get_weights()
    logits = x.mean(axis=(1, 2)) @ kernel + bias
    cache_dir = tmp_path if cache else None
    softmax = extract_features(model, x, cache_dir=cache_dir, verbose=0)
    np.testing.assert_allclose(softmax.features.sum(axis=1), 1.0, rtol=1e-5)
    model.get_layer("out").activation = keras.activations.linear
    linear = extract_features(model, x, cache_dir=cache_dir, verbose=0)
    assert not linear.from_cache
    np.testing.assert_allclose(linear.features, logits, rtol=1e-4, atol=1e-5)
    model.get_layer("out").activation = keras.activations.softmax
    back = extract_features(model, x, cache_dir=cache_dir, verbose=0)
    np.testing.assert_allclose(back.features, softmax.features, rtol=1e-5)
    assert back.from_cache == cache


def test_compiled_function_follows_new_weights_and_a_rebuilt_layer():
    model = _softmax_model()
    x = _images(5, size=4) / 255.0
    first = extract_features(model, x, verbose=0)
    model.get_layer("out").set_weights([np.zeros((3, 3)), np.array([1.0, 2.0, 3.0])])
    shifted = extract_features(model, x, verbose=0)
    expected = np.exp([1.0, 2.0, 3.0]) / np.exp([1.0, 2.0, 3.0]).sum()
    np.testing.assert_allclose(shifted.features, np.tile(expected, (5, 1)), rtol=1e-5)
    assert not np.allclose(first.features, shifted.features)


def test_the_compiled_call_is_reused_while_the_model_is_unchanged(monkeypatch):
    from keras_smalldata.features import _forward

    compiled = []
    original = _forward._compile
    monkeypatch.setattr(_forward, "_compile", lambda model: compiled.append(model) or original(model))
    model, x = _softmax_model(), _images(5, size=4)
    for _ in range(3):
        extract_features(model, x, batch_size=2, verbose=0)
    assert len(compiled) == 1
    model.trainable = False  # another trainable state: a new compiled call
    extract_features(model, x, verbose=0)
    assert len(compiled) == 2
