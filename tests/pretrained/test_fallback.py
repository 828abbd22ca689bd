"""pretrained_base_or_random: a loud fallback to random weights, only for ImageNet."""

import keras
import numpy as np
import pytest
from keras.src.utils import file_utils

from keras_smalldata.pretrained import (
    PretrainedBase,
    RandomWeightsFallbackWarning,
    pretrained_base_or_random,
)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network and an empty Keras cache, whatever the machine has."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))

    def no_network(*args, **kwargs):
        raise Exception("URL fetch failure: no network in this test")

    monkeypatch.setattr(file_utils, "get_file", no_network)


def test_missing_imagenet_weights_fall_back_loudly(offline, capsys):
    with pytest.warns(RandomWeightsFallbackWarning, match="vgg16_weights_tf_dim_ordering"):
        base, weights = pretrained_base_or_random("vgg16", input_shape=(32, 32, 3))
    assert weights is None
    assert isinstance(base, PretrainedBase) and base.output.shape == (None, 1, 1, 512)
    banner = capsys.readouterr().err
    assert "RANDOM weights" in banner and "KERAS_HOME" in banner


def test_random_weights_are_not_a_fallback(recwarn, capsys):
    base, weights = pretrained_base_or_random("vgg16", weights=None, input_shape=(32, 32, 3))
    assert weights is None and isinstance(base, PretrainedBase)
    assert not [w for w in recwarn if issubclass(w.category, RandomWeightsFallbackWarning)]
    assert capsys.readouterr().err == ""


def test_a_local_file_is_never_replaced(tmp_path):
    with pytest.raises((FileNotFoundError, ValueError), match="no_such.weights.h5"):
        pretrained_base_or_random(
            "vgg16", weights=str(tmp_path / "no_such.weights.h5"), input_shape=(32, 32, 3)
        )


def test_a_local_file_is_loaded(tmp_path):
    source = PretrainedBase("vgg16", input_shape=(32, 32, 3), weights=None)
    path = tmp_path / "vgg16.weights.h5"
    source.save_weights(path)
    base, weights = pretrained_base_or_random("vgg16", weights=str(path), input_shape=(32, 32, 3))
    assert weights == str(path)
    for a, b in zip(base.get_weights(), source.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_other_errors_are_raised(offline):
    with pytest.raises(ValueError, match="resnet5"):
        pretrained_base_or_random("resnet5", input_shape=(32, 32, 3))
    assert keras.backend.backend() == "tensorflow"
