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
    with pytest.raises(ValueError, match=r"`pooling` must be one of \['same', None, 'avg', 'max'\]"):
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
    with pytest.raises(ValueError, match="output_layer=1: use an index from 2 to 19"):
        PretrainedBase("vgg16", input_shape=(32, 32, 3), weights=None, output_layer=1)
    with pytest.raises(ValueError, match=r"output_layer=20: index out of range; VGG16 has 20 layers"):
        PretrainedBase("vgg16", input_shape=(32, 32, 3), weights=None, output_layer=20)


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
        ({"pooling": "mean"}, ValueError, r"`pooling` must be one of \[None, 'avg', 'max'\]"),
        ({"preprocessing": "builtin"}, ValueError,
         r"`preprocessing` must be one of \['auto', 'caffe', 'tf', 'torch', 'none'\]"),
        ({"application_kwargs": {"include_top": True}}, ValueError, r"cannot set \['include_top'\]"),
        ({"train_batchnorm": "yes"}, TypeError, "train_batchnorm='yes'"),
        ({"trainable": "no"}, TypeError, "`trainable` must be True or False"),
        ({"weights": 42}, TypeError, "`weights` must be 'imagenet', None or the path"),
    ],
)
def test_argument_checks(kwargs, error, message):
    with pytest.raises(error, match=message):
        PretrainedBase("vgg16", **{"weights": None, "input_shape": (32, 32, 3), **kwargs})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"include_top": True}, r"does not take `include_top`.*never has Keras' ImageNet "
         r"classifier.*add_classifier_head\(base\(inputs\), num_classes=5\).*"
         r"Received: include_top=True"),
        ({"classes": 5}, r"does not take `classes`.*add_classifier_head.*Received: classes=5"),
        ({"classifier_activation": None}, r"does not take `classifier_activation`"),
        ({"input_tensor": "x"}, r"does not take `input_tensor`.*x = base\(tensor\)"),
        ({"include_preprocessing": False}, r"does not take `include_preprocessing`.*"
         r"preprocessing='none'"),
        ({"foo_bar": 1}, r"unexpected keyword argument foo_bar=1\. Accepted: architecture, "),
        ({"input_shpe": (32, 32, 3)}, r"input_shpe=.*Did you mean 'input_shape'\?"),
        ({"weight": None}, r"weight=None\. Did you mean 'weights'"),
        ({"train_batch_norm": False}, r"Did you mean 'train_batchnorm'"),
    ],
)
def test_unknown_arguments_are_refused_with_what_to_use(kwargs, message):
    """Keras' Functional model ignores unknown keywords: the base must not."""
    with pytest.raises(TypeError, match=message):
        PretrainedBase("vgg16", input_shape=(32, 32, 3), weights=None, **kwargs)


def test_config_has_keras_layer_entries_and_rebuilds(vgg16):
    config = vgg16.get_config()
    assert config["name"] == "vgg16" and config["trainable"] is True
    assert keras.dtype_policies.get(config["dtype"]).name == keras.config.dtype_policy().name
    # Exactly what Keras passes back when it rebuilds the base from a config.
    clone = PretrainedBase.from_config(config)
    assert clone.get_config() == config
    renamed = PretrainedBase.from_config({**config, "name": "other", "trainable": False})
    assert renamed.name == "other" and renamed.trainable_weights == []


def test_one_resolver_gives_output_layer_the_same_auto_name_hints():
    """output_layer= and freeze_until() go through the same look-up, with its label.

    An auto-numbered name of one instance does not exist in the next one (that
    is the point), so the look-up is run on the layers of one built base.
    """
    from keras_smalldata.pretrained.base import layer_index

    base = PretrainedBase("MobileNetV3Small", input_shape=(32, 32, 3), weights=None,
                          application_kwargs={"alpha": 0.75, "minimalistic": True})
    names = [layer.name for layer in base.layers]
    index = next(i for i, name in enumerate(names) if name.startswith("re_lu") and i > 60)
    with pytest.raises(ValueError) as info:
        layer_index(base, names[index], base.architecture, owner="MobileNetV3Small",
                    label=lambda value: f"output_layer={value!r}", block_end=True, min_index=2)
    message = str(info.value)
    assert f"output_layer='{names[index]}': '{names[index]}' is an automatic layer name" in message
    assert f"its index: output_layer={index}  (base.layers[{index}])" in message
    with pytest.raises(ValueError) as same:
        base.freeze_until(names[index])
    assert str(same.value).split(":", 1)[1] == message.split(":", 1)[1].replace(
        f"output_layer={index}", f"freeze_until({index})")


def test_inception_minimum_size_is_named():
    with pytest.raises(ValueError, match="too small for InceptionV3: each side must be at least 75"):
        PretrainedBase("inception_v3", input_shape=(64, 64, 3), weights=None)


def test_default_input_shape_and_variable_size():
    default = PretrainedBase("vgg16", weights=None, output_layer="block1")
    assert default.input.shape == (None, 224, 224, 3)
    variable = PretrainedBase("vgg16", input_shape=(None, None, 3), weights=None, output_layer="block1")
    assert variable(np.zeros((1, 40, 48, 3))).shape == (1, 20, 24, 64)


@pytest.fixture(scope="module")
def free_size_mobilenet():
    return PretrainedBase("mobilenet_v2", input_shape=(None, None, 3), weights=None,
                          application_kwargs={"alpha": 0.35}, pooling="avg")


@pytest.mark.parametrize("height, width", [(16, 40), (40, 31), (4, 4)])
def test_a_free_size_base_refuses_pictures_below_the_minimum(free_size_mobilenet, height, width):
    """Issue 23: below 32 px MobileNetV2 gave features anyway, or an error from deep inside."""
    base = free_size_mobilenet
    with pytest.raises(ValueError) as info:
        base(np.zeros((2, height, width, 3), "float32"))
    message = str(info.value)
    assert (
        f"'mobilenetv2' got pictures of {height}x{width} pixels (shape (2, {height}, {width}, 3)): "
        "MobileNetV2 needs at least 32 pixels per side (its default size is 224)."
    ) in message
    assert "input_shape=(None, None, 3), it takes any size from 32 up" in message
    assert "keras.layers.Resizing(224, 224)" in message
    # Building a model on such pictures fails the same way, at once.
    with pytest.raises(ValueError, match=f"got pictures of {height}x{width} pixels"):
        inputs = keras.Input((height, width, 3))
        keras.Model(inputs, base(inputs))


def test_a_free_size_base_takes_pictures_from_the_minimum_up(free_size_mobilenet):
    base = free_size_mobilenet
    for height, width in [(32, 32), (32, 57), (64, 40)]:
        assert tuple(base(np.zeros((1, height, width, 3), "float32")).shape) == (1, 1280)
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, base(inputs))
    assert tuple(model(np.zeros((1, 48, 48, 3), "float32")).shape) == (1, 1280)
