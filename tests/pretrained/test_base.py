"""PretrainedBase structure, Functional API use, cutting and argument checks."""

import keras
import numpy as np
import pytest

from keras_smalldata.pretrained import ImageNetPreprocessing, PretrainedBase


def test_structure_other_code_relies_on(vgg16):
    assert vgg16.name == "vgg16"
    assert isinstance(vgg16, keras.Model)
    assert vgg16.count_params() == 14_714_688
    assert isinstance(vgg16.layers[0], keras.layers.InputLayer)
    assert vgg16.layers[0].name == "image"
    assert isinstance(vgg16.layers[1], ImageNetPreprocessing)
    assert [layer.name for layer in vgg16.layers[2:5]] == ["block1_conv1", "block1_conv2", "block1_pool"]
    assert vgg16.last_conv_layer_name == "block5_conv3"
    assert vgg16.feature_layer_name == "block5_pool"
    assert vgg16.output.shape == (None, 1, 1, 512)


def test_nested_paths_and_submodels(vgg16, pictures):
    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, keras.layers.Flatten()(vgg16(inputs)))
    # Walking .layers gives "vgg16/block3_conv1" paths.
    paths = [
        f"{layer.name}/{inner.name}"
        for layer in model.layers if isinstance(layer, keras.Model)
        for inner in layer.layers
    ]
    assert "vgg16/block3_conv1" in paths
    # A feature extractor cut from the base still takes 0-255 pictures.
    extractor = keras.Model(vgg16.input, vgg16.get_layer(vgg16.last_conv_layer_name).output)
    assert extractor(pictures[:2]).shape == (2, 2, 2, 512)
    assert model.predict(pictures, verbose=0).shape == (8, 512)


def test_cut_at_a_block_shares_layers(vgg16, pictures):
    cut = vgg16.cut_at("block3")
    assert isinstance(cut, PretrainedBase)
    assert cut.output.shape == (None, 4, 4, 256)
    assert cut.layers[-1].name == "block3_pool"
    assert cut.get_layer("block3_conv3") is vgg16.get_layer("block3_conv3")
    assert cut.count_params() == 1_735_488
    assert cut.last_conv_layer_name == "block3_conv3"
    assert cut.blocks == {"block1": (2, 4), "block2": (5, 7), "block3": (8, 11)}
    expected = keras.Model(vgg16.input, vgg16.get_layer("block3_pool").output).predict(pictures, verbose=0)
    np.testing.assert_allclose(cut.predict(pictures, verbose=0), expected, rtol=1e-6)
    cut.freeze()  # shared layers: the original sees it
    assert not vgg16.get_layer("block2_conv1").trainable
    vgg16.unfreeze()
    with pytest.raises(ValueError, match=r"no layer or block named 'block6'"):
        vgg16.cut_at("block6")
    with pytest.raises(ValueError, match="pooling='sum'"):
        vgg16.cut_at("block3", pooling="sum")


def test_output_layer_argument(pictures):
    by_name = PretrainedBase("vgg16", input_shape=(32, 32, 3), weights=None, output_layer="block2_pool")
    by_block = PretrainedBase("vgg16", input_shape=(32, 32, 3), weights=None, output_layer="block2",
                              pooling="max")
    by_index = PretrainedBase("vgg16", input_shape=(32, 32, 3), weights=None, output_layer=7)
    assert by_name.output.shape == by_index.output.shape == (None, 8, 8, 128)
    assert by_block.output.shape == (None, 128)
    assert by_block.layers[-1].name == "max_pool"
    assert by_block.feature_layer_name == "block2_pool"
    with pytest.raises(ValueError, match=r"output_layer='block2_conv': .*Closest names: \[.*'block2_conv1'"):
        PretrainedBase("vgg16", input_shape=(32, 32, 3), weights=None, output_layer="block2_conv")
    with pytest.raises(ValueError, match="use an index from 2 to 19"):
        PretrainedBase("vgg16", input_shape=(32, 32, 3), weights=None, output_layer=1)


def test_pooling_on_the_full_base():
    base = PretrainedBase("vgg16", input_shape=(32, 32, 3), weights=None, pooling="avg")
    assert base.output.shape == (None, 512)
    assert base.feature_layer_name == "block5_pool"
    assert base.last_conv_layer_name == "block5_conv3"


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"input_shape": (31, 31, 3)}, ValueError, "at least 32 pixels"),
        ({"input_shape": (64, 64, 1)}, ValueError, r"must be \(height, width, 3\)"),
        ({"input_shape": (64, 64)}, ValueError, r"must be \(height, width, 3\)"),
        ({"input_shape": "64x64"}, TypeError, "must be a tuple"),
        ({"pooling": "mean"}, ValueError, "pooling='mean' is not supported"),
        ({"application_kwargs": {"include_top": True}}, ValueError, r"cannot set \['include_top'\]"),
        ({"train_batchnorm": "yes"}, TypeError, "train_batchnorm='yes'"),
    ],
)
def test_argument_checks(kwargs, error, message):
    with pytest.raises(error, match=message):
        PretrainedBase("vgg16", **{"weights": None, "input_shape": (32, 32, 3), **kwargs})


def test_inception_minimum_size_is_named():
    with pytest.raises(ValueError, match="too small for InceptionV3: each side must be at least 75"):
        PretrainedBase("inception_v3", input_shape=(64, 64, 3), weights=None)


def test_default_input_shape_and_variable_size():
    default = PretrainedBase("vgg16", weights=None, output_layer="block1")
    assert default.input.shape == (None, 224, 224, 3)
    variable = PretrainedBase("vgg16", input_shape=(None, None, 3), weights=None, output_layer="block1")
    assert variable(np.zeros((1, 40, 48, 3))).shape == (1, 20, 24, 64)
