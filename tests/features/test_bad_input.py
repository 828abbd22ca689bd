"""extract_features: the bad inputs a user will try, each a clear error."""

import errno

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_smalldata.features import extract_features
from tests.features.conftest import conv_model, mean_model


@pytest.fixture(scope="module")
def model():
    return conv_model(size=16)


def _images(n, size=16):
    return np.random.default_rng(0).uniform(0, 255, (n, size, size, 3)).astype("float32")


def test_empty_inputs(model, tmp_path):
    with pytest.raises(ValueError, match="data is empty"):
        extract_features(model, np.zeros((0, 16, 16, 3)), verbose=0)
    with pytest.raises(ValueError, match="data is empty"):
        extract_features(model, tf.data.Dataset.from_tensor_slices(_images(4)).take(0), verbose=0)
    # Unknown cardinality, found empty only while iterating; nothing is cached.
    filtered = tf.data.Dataset.from_tensor_slices(_images(4)).filter(lambda x: False).batch(2)
    assert int(filtered.cardinality()) < 0
    with pytest.raises(ValueError, match="data is empty"):
        extract_features(model, filtered, verbose=0)
    with pytest.raises(ValueError, match="data is empty"):
        extract_features(model, filtered, cache_dir=tmp_path, verbose=0)
    assert not any(p.name.endswith(".npy") for p in tmp_path.rglob("*"))


def test_missing_labels_when_required(model):
    for data in (_images(3), tf.data.Dataset.from_tensor_slices(_images(3)).batch(2)):
        with pytest.raises(ValueError, match="require_labels=True but data has no labels"):
            extract_features(model, data, require_labels=True, verbose=0)
    result = extract_features(model, (_images(3), [0, 1, 0]), require_labels=True, verbose=0)
    assert result.labels.tolist() == [0, 1, 0]


def test_image_size_mismatch_names_both_shapes(model, tmp_path):
    with pytest.raises(ValueError) as error:
        extract_features(model, _images(2, size=20), verbose=0)
    message = str(error.value)
    assert "(20, 20, 3)" in message and "(16, 16, 3)" in message and "image_size=(16, 16)" in message
    with pytest.raises(ValueError, match=r"\(16, 16, 1\).*\(16, 16, 3\)"):
        extract_features(model, np.zeros((2, 16, 16, 1)), verbose=0)
    with pytest.raises(ValueError, match=r"\(16, 16\).*\(16, 16, 3\)"):
        extract_features(model, np.zeros((2, 16, 16)), verbose=0)
    dataset = tf.data.Dataset.from_tensor_slices((_images(4, size=24), np.arange(4))).batch(2)
    with pytest.raises(ValueError, match=r"\(24, 24, 3\).*\(16, 16, 3\)"):
        extract_features(model, dataset, cache_dir=tmp_path, verbose=0)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_unsupported_data(model):
    with pytest.raises(TypeError, match="tf.data.Dataset"):
        extract_features(model, "pictures/train", verbose=0)
    with pytest.raises(TypeError, match="dicts"):
        extract_features(model, tf.data.Dataset.from_tensor_slices({"image": _images(2)}), verbose=0)
    three = tf.data.Dataset.from_tensor_slices((_images(2), [0, 1], [1.0, 1.0])).batch(2)
    with pytest.raises(ValueError, match="sample weights"):
        extract_features(model, three, verbose=0)
    with pytest.raises(ValueError, match="sample weights"):
        extract_features(model, (_images(2), [0, 1], [1.0, 1.0]), verbose=0)
    with pytest.raises(ValueError, match="x has 2 samples but y has 3"):
        extract_features(model, (_images(2), [0, 1, 0]), verbose=0)
    with pytest.raises(TypeError, match="Labels must be numbers"):
        extract_features(model, (_images(2), np.array(["cat", "dog"])), verbose=0)


def test_unsupported_models(model):
    with pytest.raises(TypeError, match="model must be a Keras model"):
        extract_features(lambda x: x, _images(2), verbose=0)
    inputs = keras.Input((16, 16, 3))
    two = keras.Model(inputs, [keras.layers.Flatten()(inputs), keras.layers.Flatten()(inputs)])
    with pytest.raises(ValueError, match="several outputs"):
        extract_features(two, _images(2), verbose=0)
    a, b = keras.Input((16, 16, 3)), keras.Input((16, 16, 3))
    two_inputs = keras.Model([a, b], keras.layers.Add()([a, b]))
    with pytest.raises(ValueError, match="2 inputs"):
        extract_features(two_inputs, _images(2), verbose=0)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"batch_size": 0}, ValueError, "batch_size=0"),
        ({"batch_size": 2.5}, TypeError, "batch_size=2.5"),
        ({"seed": -1}, ValueError, "seed=-1"),
        ({"augment_rounds": -1}, ValueError, "augment_rounds=-1"),
        ({"augment_rounds": 2}, ValueError, "needs augmentation="),
        ({"augmentation": keras.layers.RandomFlip()}, ValueError, "augment_rounds=0"),
        ({"augmentation": "flip", "augment_rounds": 1}, TypeError, "augmentation='flip'"),
        ({"include_original": False}, ValueError, "nothing to extract"),
        ({"seed": "1"}, TypeError, "seed='1'"),
        ({"class_names": "cats"}, TypeError, "class_names='cats'"),
        ({"verbose": 3}, ValueError, "verbose=3"),
    ],
)
def test_bad_arguments(model, kwargs, error, match):
    with pytest.raises(error, match=match):
        extract_features(model, _images(2), **kwargs)


def test_model_without_fixed_input_size_takes_any_size():
    inputs = keras.Input((None, None, 3))
    any_size = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))
    for size in (12, 20):
        result = extract_features(any_size, _images(3, size=size), verbose=0)
        np.testing.assert_allclose(result.features, _images(3, size=size).mean(axis=(1, 2)), rtol=1e-5)
    assert mean_model().inputs[0].shape[1:] == (12, 12, 3)


def test_one_picture_without_a_batch_axis(model):
    # Issue 23: it reported "shape (16, 3)", the shape of a row of the picture.
    picture = _images(1)[0]
    with pytest.raises(ValueError) as error:
        extract_features(model, picture, verbose=0)
    message = str(error.value)
    assert "one picture" in message and "(16, 16, 3)" in message and "x[None]" in message
    assert "(16, 3)" not in message
    result = extract_features(model, picture[None], verbose=0)
    assert len(result) == 1


def test_a_list_of_pictures_of_different_sizes(model):
    # Issue 23: NumPy's "inhomogeneous shape" error, which names neither picture.
    pictures = [_images(1)[0], _images(1, size=20)[0], _images(1)[0]]
    with pytest.raises(ValueError) as error:
        extract_features(model, pictures, verbose=0)
    message = str(error.value)
    assert "picture 1" in message and "(20, 20, 3)" in message and "(16, 16, 3)" in message
    assert "image_size=" in message
    same = extract_features(model, [pictures[0], pictures[2]], verbose=0)
    np.testing.assert_allclose(same.features, model.predict(np.stack([pictures[0], pictures[2]]), verbose=0), atol=1e-4)


@pytest.mark.parametrize("cache_dir, error", [(123, TypeError), ("", ValueError), (b"cache", TypeError)])
def test_bad_cache_dir(model, cache_dir, error):
    # Issue 23: cache_dir=123 gave "expected str, bytes or os.PathLike object, not int".
    with pytest.raises(error, match=f"cache_dir={cache_dir!r}"):
        extract_features(model, _images(2), cache_dir=cache_dir, verbose=0)


@pytest.mark.parametrize("where", ["append", "finish"])
def test_a_full_disk_names_the_cache(model, tmp_path, monkeypatch, where):
    # Issue 23: a bare "OSError: [Errno 28] No space left on device".
    from keras_smalldata.features import _npy_writer

    def full(self, *args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_npy_writer.NpyAppender, where, full)
    cache = tmp_path / "feature_cache"
    with pytest.raises(OSError) as error:
        extract_features(model, _images(5), batch_size=2, cache_dir=cache, verbose=0)
    assert error.value.errno == errno.ENOSPC
    message = str(error.value)
    assert str(cache) in message and "No space left on device" in message and "cache_dir=None" in message
    assert not [p for p in cache.rglob("*") if p.is_file()]  # nothing half-written is left
