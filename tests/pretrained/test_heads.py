"""Classifier heads: the seeds' head and its variants."""

import keras
import pytest

from keras_smalldata.pretrained import add_classifier_head, classifier_model


def test_seeds_head_on_vgg16_features():
    model = classifier_model((4, 4, 512))
    assert model.count_params() == 2_097_665
    assert [layer.name for layer in model.layers] == [
        "features", "head_flatten", "head_dense", "head_dropout", "head_output",
    ]
    assert model.layers[-1].activation is keras.activations.sigmoid
    assert model.output.shape == (None, 1)


@pytest.mark.parametrize(
    "kwargs, units, activation, params",
    [
        ({"num_classes": 10}, 10, "softmax", 4 * 4 * 512 * 256 + 256 + 257 * 10),
        ({"logits": True}, 1, "linear", 2_097_665),
        ({"reduce": "avg"}, 1, "sigmoid", 512 * 256 + 256 + 257),
        ({"reduce": "max", "hidden_units": None}, 1, "sigmoid", 513),
        ({"dropout": 0.0, "hidden_units": 16}, 1, "sigmoid", 8192 * 16 + 16 + 17),
    ],
)
def test_head_variants(kwargs, units, activation, params):
    model = classifier_model((4, 4, 512), **kwargs)
    assert model.output.shape == (None, units)
    assert model.layers[-1].activation.__name__ == activation
    assert model.count_params() == params
    if kwargs.get("dropout") == 0.0:
        assert not any(isinstance(layer, keras.layers.Dropout) for layer in model.layers)


def test_vector_input_skips_reduction():
    model = classifier_model((512,))
    assert model.count_params() == 512 * 256 + 256 + 257
    assert not any(isinstance(layer, keras.layers.Flatten) for layer in model.layers)


def test_custom_prefix():
    inputs = keras.Input((8,))
    out = add_classifier_head(inputs, name="clf", num_classes=3)
    assert out.shape == (None, 3)
    assert {layer.name for layer in keras.Model(inputs, out).layers} >= {"clf_dense", "clf_output"}


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"num_classes": 1}, ValueError, "`num_classes` must be an int >= 2. Received: num_classes=1"),
        ({"num_classes": True}, TypeError, "num_classes=True"),
        ({"hidden_units": 0}, ValueError, "`hidden_units` must be a positive int or None"),
        ({"dropout": 1.0}, ValueError, r"`dropout` must be a number in \[0, 1\)"),
        ({"reduce": "mean"}, ValueError, r"`reduce` must be one of \['flatten', 'avg', 'max', 'none'\]"),
        ({"reduce": "none"}, ValueError, "reduce='none' needs a vector input"),
        ({"logits": "yes"}, TypeError, "`logits` must be True or False"),
    ],
)
def test_head_argument_checks(kwargs, error, message):
    with pytest.raises(error, match=message):
        add_classifier_head(keras.Input((4, 4, 512)), **kwargs)


def test_options_after_num_classes_are_keyword_only():
    inputs = keras.Input((4, 4, 512))
    with pytest.raises(TypeError):
        add_classifier_head(inputs, 2, 128)
    with pytest.raises(TypeError):
        classifier_model((4, 4, 512), "head")
