"""Weights: Keras' download/cache path, offline errors, local files and mismatches."""

import os

import h5py
import keras
import numpy as np
import pytest
from keras.src.utils import file_utils

from keras_smalldata.pretrained import PretrainedBase, keras_cache_dir

NOTOP = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"


def _offline(*args, **kwargs):
    raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- offline")


def test_offline_imagenet_error_says_what_and_where_and_how(monkeypatch):
    monkeypatch.setattr(file_utils, "get_file", _offline)  # fails at once, never hangs
    with pytest.raises(FileNotFoundError) as info:
        PretrainedBase("vgg16", input_shape=(32, 32, 3))
    message = str(info.value)
    assert f"file '{NOTOP}' is not in Keras' cache" in message
    assert os.path.join(keras_cache_dir(), NOTOP) in message
    assert "$KERAS_HOME/models" in message and "~/.keras/models" in message
    assert f"PretrainedBase('VGG16', weights='/path/to/{NOTOP}')" in message
    assert "weights=None" in message
    assert "offline" in message  # the original error is kept
    assert isinstance(info.value.__cause__, Exception)


def test_offline_error_uses_the_file_name_keras_asks_for(monkeypatch):
    """EfficientNet derives the file name from the model name: we report Keras' own."""
    asked = []

    def offline(fname=None, origin=None, **kwargs):
        asked.append((fname, kwargs.get("cache_subdir")))
        raise OSError("no network")

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(FileNotFoundError, match="'efficientnetb0_notop.h5'"):
        PretrainedBase("efficientnetb0", input_shape=(32, 32, 3))
    assert asked == [("efficientnetb0_notop.h5", "models")]


def test_imagenet_goes_through_keras_cache(monkeypatch, tmp_path, vgg16):
    """A cached file (what get_file returns) is loaded: simulate Keras' cache hit."""
    cached = tmp_path / NOTOP
    vgg16.save_weights(tmp_path / "x.weights.h5")
    plain = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    plain.load_weights(tmp_path / "x.weights.h5")
    _write_legacy_h5(plain, cached)
    calls = []

    def cache_hit(fname=None, origin=None, **kwargs):
        calls.append(fname)
        return str(cached)

    monkeypatch.setattr(file_utils, "get_file", cache_hit)
    base = PretrainedBase("vgg16", input_shape=(32, 32, 3), weights="imagenet")
    assert calls == [NOTOP]
    _assert_same_weights(base, vgg16)
    assert base.train_batchnorm is False
    assert base.get_config()["weights"] is None


def _write_legacy_h5(model, path):
    """Writes weights in the legacy .h5 layout of Keras' downloadable files."""
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)


def _assert_same_weights(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    assert len(wa) == len(wb) > 0
    for x, y in zip(wa, wb):
        np.testing.assert_array_equal(x, y)


def test_weights_path_round_trip(tmp_path, vgg16):
    path = tmp_path / "vgg16.weights.h5"
    vgg16.save_weights(path)
    base = PretrainedBase("vgg16", input_shape=(32, 32, 3), weights=path)
    _assert_same_weights(base, vgg16)
    # Convolution weights do not depend on the input size.
    bigger = PretrainedBase("vgg16", input_shape=(64, 64, 3), weights=str(path))
    _assert_same_weights(bigger, vgg16)


def test_keras_download_format_is_accepted(tmp_path, vgg16):
    plain = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    plain.set_weights(vgg16.get_weights())
    _write_legacy_h5(plain, tmp_path / NOTOP)
    _assert_same_weights(PretrainedBase("vgg16", input_shape=(32, 32, 3), weights=tmp_path / NOTOP), vgg16)


def test_weights_of_the_full_base_load_into_a_cut_base(tmp_path, vgg16):
    vgg16.save_weights(tmp_path / "full.weights.h5")
    cut = PretrainedBase("vgg16", input_shape=(32, 32, 3), weights=tmp_path / "full.weights.h5",
                         output_layer="block2")
    np.testing.assert_array_equal(
        cut.get_layer("block2_conv2").get_weights()[0],
        vgg16.get_layer("block2_conv2").get_weights()[0],
    )


def test_mismatched_architecture_is_a_clear_error(tmp_path):
    vgg19 = PretrainedBase("vgg19", input_shape=(32, 32, 3), weights=None)
    vgg19.save_weights(tmp_path / "vgg19.weights.h5")
    with pytest.raises(ValueError) as info:
        PretrainedBase("vgg16", input_shape=(32, 32, 3), weights=tmp_path / "vgg19.weights.h5")
    message = str(info.value)
    assert "does not match VGG16(include_top=False, input_shape=(32, 32, 3))" in message
    assert "shape" in message
    assert "'..._notop.h5' download" in message


def test_legacy_file_of_another_architecture_is_refused(tmp_path):
    vgg19 = keras.applications.VGG19(include_top=False, weights=None, input_shape=(32, 32, 3))
    _write_legacy_h5(vgg19, tmp_path / "vgg19_notop.h5")
    with pytest.raises(ValueError, match=r"does not match VGG16.*Layer count mismatch"):
        PretrainedBase("vgg16", input_shape=(32, 32, 3), weights=tmp_path / "vgg19_notop.h5")


def test_weights_of_a_cut_base_are_refused_for_the_full_one(tmp_path, vgg16):
    vgg16.cut_at("block3").save_weights(tmp_path / "cut.weights.h5")
    with pytest.raises(ValueError, match="could not be loaded"):
        PretrainedBase("vgg16", input_shape=(32, 32, 3), weights=tmp_path / "cut.weights.h5")


@pytest.mark.parametrize(
    "weights, error, message",
    [
        ("missing.weights.h5", FileNotFoundError, r"weights='.*missing.weights.h5': no such file"),
        ("notes.txt", ValueError, "unsupported extension"),
        (".", ValueError, "is a folder"),
        (42, TypeError, "must be 'imagenet', None or the path"),
    ],
)
def test_bad_weights_arguments(tmp_path, monkeypatch, weights, error, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("not weights")
    with pytest.raises(error, match=message):
        PretrainedBase("vgg16", input_shape=(32, 32, 3), weights=weights)


def test_keras_cache_dir_follows_keras_home():
    from keras.src.backend.config import keras_home

    expected = os.path.join(os.path.expanduser(keras_home()), "models")
    assert keras_cache_dir() in (expected, os.path.join("/tmp", ".keras", "models"))
