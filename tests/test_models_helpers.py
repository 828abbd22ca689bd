"""The helpers under every sub-package: the layer walk, the layer look-up, "did you mean"."""

import ast
import pathlib

import keras
import numpy as np
import pytest

import keras_smalldata
from keras_smalldata._arguments import closest, did_you_mean
from keras_smalldata._models import (
    contains_layer,
    nested_layers,
    resolve_layer,
    walk_layers,
)
from keras_smalldata.pretrained.base import layer_index
from keras_smalldata.pretrained.registry import get_architecture
from keras_smalldata.viz import get_activations, layer_paths


def _nested():
    """inner (Functional) and head (Sequential) inside an outer Functional model."""
    inner_in = keras.Input((8, 8, 3), name="inner_in")
    inner = keras.Model(inner_in, keras.layers.Conv2D(4, 3, name="conv")(inner_in), name="inner")
    head = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(2, name="dense")], name="head"
    )
    inputs = keras.Input((8, 8, 3), name="pictures")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(inner(inputs))
    return keras.Model(inputs, head(x), name="outer"), inner


def test_walk_gives_paths_depth_first_each_layer_once():
    model, inner = _nested()
    walked = list(walk_layers(model, into="models", inputs=False))
    assert [path for path, _ in walked] == ["inner", "inner/conv", "pool", "head", "head/dense"]
    assert walked[1][1] is inner.get_layer("conv")
    with_inputs = [path for path, _ in walk_layers(model, into="models")]
    assert with_inputs[0] == "pictures" and "inner/inner_in" in with_inputs
    assert [layer for _, layer in walk_layers(model)] == list(nested_layers(model))
    assert model not in list(nested_layers(model))  # the root is not yielded
    assert layer_paths(model) == ["inner", "inner/conv", "pool", "head", "head/dense"]


def test_walk_yields_a_shared_layer_once():
    shared = keras.layers.Dense(4, name="shared")
    a = keras.Sequential([keras.Input((4,)), shared], name="a")
    b = keras.Sequential([keras.Input((4,)), shared], name="b")
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Add(name="add")([a(inputs), b(inputs)]))
    paths = [path for path, _ in walk_layers(model, inputs=False)]
    assert paths == ["a", "a/shared", "b", "add"]


def test_walk_into_layers_and_attributes():
    pipeline = keras.layers.Pipeline([keras.layers.RandomFlip(name="flip")], name="pipeline")
    wrapped = keras.layers.Bidirectional(keras.layers.LSTM(3, name="lstm"), name="bi")
    model = keras.Sequential([keras.Input((5, 4)), pipeline, wrapped], name="seq")
    # keras.Model only: a Pipeline is a layer, not a model.
    assert [p for p, _ in walk_layers(model, into="models")] == ["pipeline", "bi"]
    assert [p for p, _ in walk_layers(model, into="layers")] == ["pipeline", "pipeline/flip", "bi"]
    deep = [p for p, _ in walk_layers(model, into="attributes")]
    assert deep[:3] == ["pipeline", "pipeline/flip", "bi"]
    assert wrapped.forward_layer.name in {p.split("/")[-1] for p in deep}
    assert contains_layer(model, pipeline.layers[0])
    assert not contains_layer(model, keras.layers.Dense(1))
    with pytest.raises(ValueError, match=r"`into` must be one of .*Received: into='all'"):
        list(walk_layers(model, into="all"))


def test_resolve_layer_by_path_name_and_object():
    model, inner = _nested()
    conv = inner.get_layer("conv")
    assert resolve_layer(model, "inner/conv") == ("inner/conv", conv)
    assert resolve_layer(model, "conv") == ("inner/conv", conv)
    assert resolve_layer(model, conv) == ("inner/conv", conv)
    assert resolve_layer(model, "pool")[0] == "pool"


def test_resolve_layer_errors_name_the_value_and_the_closest_names():
    model, _ = _nested()
    with pytest.raises(
        ValueError,
        match=r"^layer='inner/cnv': model 'outer' has no layer named 'inner/cnv'\. "
        r"Closest names: \['inner/conv'.*\]\. Use keras_smalldata\.viz\.layer_paths",
    ):
        resolve_layer(model, "inner/cnv")
    with pytest.raises(ValueError, match=r"layer 'alien' is not a layer of model 'outer' nor of"):
        resolve_layer(model, keras.layers.Dense(2, name="alien"))
    with pytest.raises(ValueError, match=r"'pictures' is an input layer of model 'outer'"):
        resolve_layer(model, "pictures")
    with pytest.raises(TypeError, match=r"`layers` must be a layer path .*Received: layers=3\.$"):
        resolve_layer(model, 3, argument="layers")


def test_resolve_layer_refuses_an_ambiguous_bare_name():
    a = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="d")], name="a")
    b = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="d")], name="b")
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Add()([a(inputs), b(inputs)]), name="m")
    with pytest.raises(ValueError, match=r"'d' is ambiguous in model 'm': it matches \['a/d', 'b/d'\]"):
        resolve_layer(model, "d")
    assert resolve_layer(model, "b/d") == ("b/d", b.get_layer("d"))


def test_resolve_layer_flat_with_blocks_inputs_and_suggestions():
    vgg = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    blocks = {"block1": vgg.get_layer("block1_pool")}
    found = resolve_layer(vgg, "block1", nested=False, blocks=blocks)
    assert found == ("block1_pool", vgg.get_layer("block1_pool"))
    assert resolve_layer(vgg, vgg.layers[0].name, inputs=True, nested=False)[1] is vgg.layers[0]
    with pytest.raises(ValueError) as info:
        resolve_layer(
            vgg, "block1_conv", label=lambda v: f"freeze_until({v!r})", owner="'vgg16'",
            nested=False, blocks=blocks, suggest=lambda layer: layer.name != "block1_conv2",
            listing="See base.layers.",
        )
    message = str(info.value)
    assert message.startswith("freeze_until('block1_conv'): 'vgg16' has no layer or block named")
    assert "'block1_conv1'" in message and "'block1_conv2'" not in message
    assert message.endswith("Blocks: ['block1']. See base.layers.")


def test_viz_and_pretrained_lookups_give_the_same_kind_of_error():
    model, _ = _nested()
    pictures = np.zeros((1, 8, 8, 3), "float32")
    with pytest.raises(ValueError, match=r"has no layer named 'con'\. Closest names: \['inner/conv'"):
        get_activations(model, pictures, "con")
    vgg = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    label = lambda value: f"output_layer={value!r}"  # noqa: E731
    architecture = get_architecture("vgg16")
    with pytest.raises(
        ValueError,
        match=r"output_layer='block2_conv': VGG16 has no layer or block named 'block2_conv'\. "
        r"Closest names: \[[^]]*'block2_conv1'.*Blocks: \['block1', .*'block5'\]",
    ):
        layer_index(vgg, "block2_conv", architecture, owner="VGG16", label=label, block_end=True)
    assert layer_index(vgg, "block2", architecture, owner="VGG16", label=label,
                       block_end=True) == [lyr.name for lyr in vgg.layers].index("block2_pool")
    assert layer_index(vgg, -1, architecture, owner="VGG16", label=label, block_end=True) == 18
    with pytest.raises(TypeError, match=r"output_layer=1\.5: pass a layer name, block name or index"):
        layer_index(vgg, 1.5, architecture, owner="VGG16", label=label, block_end=True)


def test_closest_and_did_you_mean():
    assert closest("neerest", ("nearest", "constant", 3)) == ["nearest"]
    assert closest("NEAREST", ("nearest",)) == ["nearest"]  # tried again in lower case
    assert closest(3, ("nearest",)) == []
    assert did_you_mean("neerest", ("nearest", "reflect")) == " Did you mean 'nearest'?"
    assert did_you_mean("zzz", ("nearest",)) == ""


def test_difflib_is_imported_by_the_did_you_mean_module_only():
    package = pathlib.Path(keras_smalldata.__file__).parent
    importers = sorted(
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if any(
            isinstance(node, (ast.Import, ast.ImportFrom))
            and "difflib" in {alias.name for alias in node.names} | {getattr(node, "module", None)}
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        )
    )
    assert importers == ["_arguments.py"]
