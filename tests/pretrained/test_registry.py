"""Architecture registry: coverage of keras.applications, look-ups, facts."""

import inspect
import re

import keras
import pytest

from keras_smalldata.pretrained import (
    Architecture,
    PretrainedBase,
    available_architectures,
    get_architecture,
    is_auto_named,
)
from keras_smalldata.pretrained.registry import PREPROCESSING_MODES


def _keras_module(name):
    """The keras.applications module that defines a constructor, e.g. 'vgg16'."""
    return inspect.getmodule(getattr(keras.applications, name)).__name__.rsplit(".", 1)[1]


def test_registry_covers_every_keras_application():
    constructors = {n for n in dir(keras.applications) if n[0].isupper()}
    assert sorted(available_architectures()) == sorted(constructors)


@pytest.mark.parametrize("family", sorted({get_architecture(n).family for n in available_architectures()}))
def test_a_family_is_one_keras_module_and_contiguous_in_the_table(family):
    """Families come from the table; Keras' own modules say which constructors belong together."""
    members = available_architectures(family)
    everything = available_architectures()
    first = everything.index(members[0])
    assert everything[first : first + len(members)] == members
    modules = {_keras_module(name) for name in members}
    # VGG16 and VGG19 live in two modules; every other family in one.
    assert len(modules) == (len(members) if family == "vgg" else 1)
    assert not [n for n in everything if n not in members and _keras_module(n) in modules]
    for name in members:
        assert get_architecture(name).module == _keras_module(name)


def _applications_source():
    modules = {inspect.getmodule(getattr(keras.applications, n))
               for n in dir(keras.applications) if n[0].isupper()}
    return "\n".join(inspect.getsource(module) for module in modules)


@pytest.mark.parametrize("name", available_architectures())
def test_weights_facts_agree_with_keras_sources(name):
    """The hash is one Keras checks; the file is an include_top=False one.

    tests/pretrained/check_registry_all.py checks every fact exactly, by
    recording the file Keras asks for when each model is built.
    """
    spec = get_architecture(name)
    source = _applications_source()
    assert spec.weights_file.endswith(("_notop.h5", "_no_top.h5", "_no_top_v2.h5"))
    assert spec.weights_url.startswith("https://storage.googleapis.com/")
    url_file = spec.weights_url.rsplit("/", 1)[1]
    assert url_file == spec.weights_file or f"{url_file}\"" in source  # NASNet: another name
    if spec.weights_hash is None:
        assert "file_hash" not in inspect.getsource(inspect.getmodule(spec.constructor))
    else:
        assert f'"{spec.weights_hash}"' in source


def test_unknown_family_lists_known_ones():
    with pytest.raises(ValueError, match=r"Did you mean 'vgg'\?.*Known families: .*'vgg'"):
        available_architectures("vgg16")


@pytest.mark.parametrize(
    "alias, name",
    [
        ("vgg16", "VGG16"),
        ("VGG16", "VGG16"),
        ("resnet50_v2", "ResNet50V2"),
        ("inception_v3", "InceptionV3"),
        ("EfficientNetV2-B0", "EfficientNetV2B0"),
        ("convnext_tiny", "ConvNeXtTiny"),
        ("mobilenet_v3_small", "MobileNetV3Small"),
        ("nasnet mobile", "NASNetMobile"),
    ],
)
def test_lookup_ignores_case_and_separators(alias, name):
    assert get_architecture(alias).name == name


@pytest.mark.parametrize(
    "typo, suggestion",
    [("vgg61", "VGG16"), ("resnet5", "ResNet50"), ("efficientnet_b9", "EfficientNetB7"),
     ("mobilenetv4", "MobileNetV2")],
)
def test_unknown_name_gets_closest_matches(typo, suggestion):
    with pytest.raises(ValueError, match=rf"Unknown architecture '{typo}'.*{suggestion}"):
        get_architecture(typo)


def test_lookup_rejects_non_strings():
    with pytest.raises(TypeError, match="`architecture` must be a name"):
        get_architecture(16)


@pytest.mark.parametrize("name", available_architectures())
def test_entry_is_consistent(name):
    spec = get_architecture(name)
    assert isinstance(spec, Architecture)
    assert spec.constructor is getattr(keras.applications, name)
    assert callable(spec.preprocess_input)
    assert spec.preprocessing in PREPROCESSING_MODES
    assert spec.min_size <= spec.default_size
    # Exactly one way to find the last block.
    assert (spec.last_block_start is None) != (spec.last_block_after is None)
    # Recorded names are stable ones (not Keras' class-name-plus-counter names).
    for fact in (spec.last_conv, spec.output_layer, spec.last_block_start, spec.last_block_after):
        if fact is not None:
            assert not re.fullmatch(
                r"(conv2d|activation|batch_normalization|re_lu|add|concatenate|"
                r"layer_normalization|max_pooling2d)(_\d+)?",
                fact,
            )
    for pattern in spec.block_patterns:
        assert re.compile(pattern).groups >= 1
    if spec.last_block_start and spec.block_patterns:
        assert any(re.match(p, spec.last_block_start) for p in spec.block_patterns)
    if spec.last_block_after:
        assert re.match(spec.landmarks, spec.last_block_after)


@pytest.mark.parametrize(
    "name, mode, default, minimum",
    [
        ("VGG16", "caffe", 224, 32),
        ("ResNet101", "caffe", 224, 32),
        ("ResNet50V2", "tf", 224, 32),
        ("InceptionV3", "tf", 299, 75),
        ("InceptionResNetV2", "tf", 299, 75),
        ("Xception", "tf", 299, 71),
        ("MobileNetV2", "tf", 224, 32),
        ("MobileNetV3Large", "none", 224, 32),
        ("DenseNet201", "torch", 224, 32),
        ("NASNetLarge", "tf", 331, 32),
        ("EfficientNetB7", "none", 600, 32),
        ("EfficientNetV2S", "none", 384, 32),
        ("ConvNeXtBase", "none", 224, 32),
    ],
)
def test_documented_facts(name, mode, default, minimum):
    spec = get_architecture(name)
    assert (spec.preprocessing, spec.default_size, spec.min_size) == (mode, default, minimum)


# Small representatives, built for real: the registry's names must be the model's.
REPRESENTATIVES = [
    ("VGG16", (32, 32, 3), {}),
    ("MobileNetV2", (32, 32, 3), {"alpha": 0.35}),
    ("MobileNetV3Small", (32, 32, 3), {"alpha": 0.75, "minimalistic": True}),
]


@pytest.fixture(scope="module", params=REPRESENTATIVES, ids=[r[0] for r in REPRESENTATIVES])
def representative(request):
    name, shape, kwargs = request.param
    return PretrainedBase(name, input_shape=shape, weights=None, application_kwargs=kwargs)


def test_registry_names_match_the_built_model(representative):
    spec = representative.architecture
    names = [layer.name for layer in representative.layers]
    if spec.output_layer is None:
        assert is_auto_named(representative.layers[representative.feature_index])
    else:
        assert representative.feature_layer_name == spec.output_layer
    assert representative.last_conv_layer_name == spec.last_conv
    assert spec.last_block_start in names
    start = names.index(spec.last_block_start)
    assert start in {first for first, _ in representative.blocks.values()}


def test_vgg16_blocks_are_its_five_blocks(vgg16):
    assert vgg16.blocks == {
        "block1": (2, 4),
        "block2": (5, 7),
        "block3": (8, 11),
        "block4": (12, 15),
        "block5": (16, 19),
    }
