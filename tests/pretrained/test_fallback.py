"""pretrained_base_or_random: a loud fallback to random weights, only when Keras cannot get the file.

The fallback itself, offline for real, is tested in test_weights.py (a fresh
process with an empty KERAS_HOME). Here: everything that must NOT fall back.
"""

import numpy as np
import pytest

from keras_smalldata.pretrained import (
    PretrainedBase,
    RandomWeightsFallbackWarning,
    get_architecture,
    pretrained_base_or_random,
)
from keras_smalldata.pretrained.weights import (
    WeightsDownloadError,
    build_with_imagenet_weights,
)

SHAPE = (32, 32, 3)


def test_random_weights_are_not_a_fallback(recwarn, capsys):
    base, weights = pretrained_base_or_random("vgg16", weights=None, input_shape=SHAPE)
    assert weights is None and isinstance(base, PretrainedBase)
    assert not [w for w in recwarn if issubclass(w.category, RandomWeightsFallbackWarning)]
    assert capsys.readouterr().err == ""


def test_a_local_file_is_never_replaced(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such.weights.h5") as info:
        pretrained_base_or_random(
            "vgg16", weights=str(tmp_path / "no_such.weights.h5"), input_shape=SHAPE
        )
    assert not isinstance(info.value, WeightsDownloadError)


def test_a_local_file_is_loaded(tmp_path):
    source = PretrainedBase("vgg16", input_shape=SHAPE, weights=None)
    path = tmp_path / "vgg16.weights.h5"
    source.save_weights(path)
    base, weights = pretrained_base_or_random("vgg16", weights=str(path), input_shape=SHAPE)
    assert weights == str(path)
    for a, b in zip(base.get_weights(), source.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_other_errors_are_raised(recwarn):
    with pytest.raises(ValueError, match="resnet5"):
        pretrained_base_or_random("resnet5", input_shape=SHAPE)
    # Keras refuses these options for ImageNet weights before any download.
    with pytest.raises(ValueError, match="alpha can be one of"):
        pretrained_base_or_random("mobilenet", input_shape=SHAPE,
                                  application_kwargs={"alpha": 0.3})
    assert not [w for w in recwarn if issubclass(w.category, RandomWeightsFallbackWarning)]


# ----------------------------- what counts as "Keras could not get the file", exactly


class _Constructor:
    """Stands for a keras.applications constructor that fails with ImageNet weights."""

    def __init__(self, error):
        self.error, self.calls = error, []

    def __call__(self, weights):
        self.calls.append(weights)
        raise self.error


@pytest.fixture
def empty_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "models").mkdir()
    return tmp_path / "models"


def _build(constructor, name="VGG16", options=None, shape=SHAPE):
    return build_with_imagenet_weights(get_architecture(name), constructor, options or {}, shape)


@pytest.mark.parametrize("failure", [
    Exception("URL fetch failure on https://example.org/x.h5: None -- offline"),  # get_file's
    ConnectionResetError("reset by peer"),
    PermissionError("cannot create the cache folder"),
])
def test_a_failed_download_is_a_weights_download_error(empty_cache, failure):
    constructor = _Constructor(failure)
    with pytest.raises(WeightsDownloadError) as info:
        _build(constructor)
    assert info.value.__cause__ is failure
    assert constructor.calls == ["imagenet"]
    assert str(empty_cache / get_architecture("VGG16").weights_file) in str(info.value)


@pytest.mark.parametrize("failure", [ValueError("alpha can be one of"), KeyError("x"),
                                     TypeError("unexpected keyword")])
def test_options_keras_refuses_are_raised_as_they_are(empty_cache, failure):
    with pytest.raises(type(failure)) as info:
        _build(_Constructor(failure))
    assert info.value is failure


def test_a_failure_with_the_file_in_the_cache_is_raised_as_it_is(empty_cache):
    """The file is there: whatever failed, it was not getting the file."""
    (empty_cache / get_architecture("VGG16").weights_file).write_bytes(b"damaged")
    with pytest.raises(OSError, match="unable to open") as info:
        _build(_Constructor(OSError("unable to open file")))
    assert not isinstance(info.value, WeightsDownloadError)


def test_options_that_change_the_file_are_said_in_the_message(empty_cache):
    """MobileNetV3 with alpha=0.75: Keras asks for another file than the row's."""
    with pytest.raises(WeightsDownloadError, match="Keras chooses MobileNetV3Small's file "
                                                   "from alpha and minimalistic"):
        _build(_Constructor(Exception("URL fetch failure")), "MobileNetV3Small", {"alpha": 0.75})
    with pytest.raises(WeightsDownloadError) as default:
        _build(_Constructor(Exception("URL fetch failure")), "MobileNetV3Small", {"alpha": 1.0})
    assert "Keras chooses" not in str(default.value)
