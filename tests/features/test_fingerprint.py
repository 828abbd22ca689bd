"""Fingerprints: what makes two models, augmentations or folders the same for the cache."""

import functools
import sys
import types
import warnings

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_smalldata.features import extract_features
from keras_smalldata.features._probe import signature, signatures_match
from keras_smalldata.features._sources import files_digest
from keras_smalldata.features.fingerprint import describe, layer_config_digest
from tests.features.conftest import load_module


def _vgg16():
    return keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))


def test_rebuilt_vgg16_has_the_same_architecture_digest():
    first, second = _vgg16(), _vgg16()
    # Keras numbers the input layer per session: the names differ...
    assert first.layers[0].name != second.layers[0].name
    # ...but not what the model computes.
    assert layer_config_digest(first) == layer_config_digest(second)
    second.set_weights(first.get_weights())
    assert describe(first).description == describe(second).description
    # Keras' own layers: nothing for the probe to check.
    assert not describe(first).needs_probe
    cut = keras.Model(first.input, first.get_layer("block4_pool").output)
    assert layer_config_digest(cut) != layer_config_digest(first)
    wider = keras.applications.VGG16(weights=None, include_top=False, input_shape=(48, 48, 3))
    assert layer_config_digest(wider) != layer_config_digest(first)


def test_dtype_policy_and_activation_count():
    def build(activation, dtype=None):
        inputs = keras.Input((4,))
        return keras.Model(inputs, keras.layers.Dense(3, activation=activation, dtype=dtype)(inputs))

    assert layer_config_digest(build("relu")) == layer_config_digest(build("relu"))
    assert layer_config_digest(build("relu")) != layer_config_digest(build("tanh"))
    assert layer_config_digest(build("relu")) != layer_config_digest(build("relu", "float16"))


def test_trainable_flag_does_not_count():
    model = _vgg16()
    before = layer_config_digest(model)
    model.trainable = False
    assert layer_config_digest(model) == before


def _scale(images, factor):
    return images * factor


def test_function_fingerprints():
    def make(factor):
        return lambda images: images * factor

    assert describe(make(2)).description == describe(make(2)).description
    assert describe(make(2)).description != describe(make(3)).description
    half = functools.partial(_scale, factor=0.5)
    double = functools.partial(_scale, factor=2.0)
    assert describe(half).description != describe(double).description
    assert describe(make(2)).user_code and describe(make(2)).needs_probe
    # Library and built-in functions: their name and version say what they compute.
    for function in (np.flip, abs):
        part = describe(function)
        assert not part.user_code and not part.opaque and not part.needs_probe
    assert describe(abs).description != describe(np.abs).description


@settings(max_examples=25, deadline=None)
@given(a=st.one_of(st.integers(), st.text(max_size=8)), b=st.one_of(st.integers(), st.text(max_size=8)))
def test_closure_values_count_exactly(a, b):
    def make(value):
        return lambda images: (images, value)

    same = describe(make(a)).description == describe(make(b)).description
    assert same == (type(a) is type(b) and a == b)


_LAYER = """
import keras

class Scale(keras.layers.Layer):
    def call(self, x):
        return x * {factor}

def double(x):
    return x * {factor}

def model(kind):
    inputs = keras.Input((4,))
    if kind == "layer class":
        outputs = Scale()(inputs)
    elif kind == "lambda layer":
        outputs = keras.layers.Lambda(double)(inputs)
    else:  # a custom activation in one of Keras' own layers
        outputs = keras.layers.Dense(2, activation=double, kernel_initializer="ones")(inputs)
    return keras.Model(inputs, outputs)
"""


@pytest.mark.parametrize("kind", ["layer class", "lambda layer", "activation"])
def test_code_of_user_layers_counts(tmp_path, monkeypatch, kind):
    name = f"user_layers_{kind.replace(' ', '_')}"

    def digest(source):
        model = load_module(tmp_path, monkeypatch, name, source).model(kind)
        part = describe(model)
        assert part.user_code
        return part.description

    original = digest(_LAYER.format(factor=2.0))
    assert digest(_LAYER.format(factor=3.0)) != original
    # What runs counts, not where it stands: moving the code down keeps the digest.
    assert digest("\n\n# a comment\n" + _LAYER.format(factor=2.0)) == original


def test_code_of_helper_functions_counts(tmp_path, monkeypatch):
    helper = "def brighten(images):\n    return images * {factor}\n"
    helpers = load_module(tmp_path, monkeypatch, "user_helpers", helper.format(factor=1.5))
    callers = load_module(
        tmp_path,
        monkeypatch,
        "user_augment",
        """
        import user_helpers
        from user_helpers import brighten

        def through_module(images):
            return user_helpers.brighten(images)

        def through_import(images):
            return brighten(images)[:, ::-1]
        """,
    )
    before = [describe(f).description for f in (callers.through_module, callers.through_import)]
    helpers = load_module(tmp_path, monkeypatch, "user_helpers", helper.format(factor=1.6))
    callers.user_helpers = helpers
    callers.brighten = helpers.brighten
    after = [describe(f).description for f in (callers.through_module, callers.through_import)]
    assert before[0] != after[0] and before[1] != after[1]


def test_code_without_a_file_is_the_users(monkeypatch):
    # A notebook's __main__ has no file: its functions are code of the user's.
    notebook = types.ModuleType("notebook_main")
    monkeypatch.setitem(sys.modules, "notebook_main", notebook)

    def define(factor):
        exec(f"def augment(images):\n    return images * {factor}\n", notebook.__dict__)  # noqa: S102
        notebook.augment.__module__ = "notebook_main"
        return describe(notebook.augment)

    first = define(2)
    assert first.user_code and first.needs_probe
    assert define(3).description != first.description


def test_this_librarys_layers_need_no_probe():
    from keras_smalldata.augment import augmentation_preset
    from keras_smalldata.pretrained import PretrainedBase

    base = PretrainedBase("MobileNetV2", weights=None, input_shape=(32, 32, 3))
    for component in (base, augmentation_preset("flip_rotate_zoom", seed=1)):
        part = describe(component)
        assert not part.user_code and part.opaque == [] and not part.needs_probe


def test_source_edited_but_not_reloaded_keeps_the_digest(tmp_path, monkeypatch):
    # The compiled code is what runs; a source file edited after import
    # has not changed the computation until the module is imported again.
    module = load_module(tmp_path, monkeypatch, "user_edited", _LAYER.format(factor=2.0))
    before = describe(module.model("layer class")).description
    (tmp_path / "user_edited.py").write_text(_LAYER.format(factor=9.0))
    assert describe(module.model("layer class")).description == before


def test_unreadable_nondeterministic_augmentation_skips_the_cache(tmp_path):
    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, keras.layers.Flatten()(inputs))
    x = np.random.default_rng(0).uniform(-1, 1, (3, 4, 4, 3)).astype("float32")
    rng = np.random.default_rng(1)  # implemented in C: its state cannot be read

    def noisy(images):
        return images + rng.normal(size=images.shape).astype("float32")

    assert describe(noisy).opaque
    with pytest.warns(UserWarning, match="cache is not used"):
        result = extract_features(
            model, x, augmentation=noisy, augment_rounds=1, cache_dir=tmp_path, verbose=0
        )
    assert result.cache_path is None and len(result) == 6
    assert list(tmp_path.iterdir()) == []
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        # A built-in function is fingerprinted by its name: cached.
        first = extract_features(model, x, augmentation=abs, augment_rounds=1, cache_dir=tmp_path, verbose=0)
        again = extract_features(model, x, augmentation=abs, augment_rounds=1, cache_dir=tmp_path, verbose=0)
    assert not first.from_cache and again.from_cache
    np.testing.assert_allclose(again.features[3:], np.abs(x).reshape(3, -1))


_NAMES = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\"),
    min_size=1,
    max_size=20,
).filter(lambda n: n not in (".", "..") and len(n.encode("utf-8")) < 200)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    files=st.dictionaries(_NAMES, st.binary(max_size=64), min_size=1, max_size=5),
    data=st.data(),
)
def test_files_digest_follows_every_byte(tmp_path_factory, files, data):
    folder = tmp_path_factory.mktemp("pictures")
    paths = {}
    for name, content in files.items():
        paths[name] = folder / name
        paths[name].write_bytes(content)
    original = files_digest(list(paths.values()))
    assert files_digest(list(reversed(paths.values()))) == original  # order-free
    name = data.draw(st.sampled_from(sorted(files)))
    changed = data.draw(st.binary(max_size=64).filter(lambda b: b != files[name]))
    paths[name].write_bytes(changed)
    assert files_digest(list(paths.values())) != original
    paths[name].write_bytes(files[name])
    assert files_digest(list(paths.values())) == original
    renamed = paths[name].with_name(paths[name].name + " (1).png")
    paths[name].rename(renamed)
    assert files_digest([renamed if p == paths[name] else p for p in paths.values()]) != original


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**16), size=st.integers(1, 300), relative=st.floats(2e-4, 10.0))
def test_probe_signature_sees_any_change_above_its_tolerance(seed, size, relative):
    rng = np.random.default_rng(seed)
    output = rng.normal(size=(1, size)).astype("float32")
    reference = signature(output)
    assert signatures_match(reference, signature(output.copy()))
    # Round-off: far below the tolerance.
    assert signatures_match(reference, signature(output * np.float32(1 + 1e-7)))
    # One value moved by more than the tolerance (1e-4 of the norm): always seen.
    moved = output.copy()
    moved[0, rng.integers(size)] += relative * np.linalg.norm(output)
    assert not signatures_match(reference, signature(moved))
    assert not signatures_match(reference, signature(output.reshape(1, size, 1)))
    with_nan = output.copy()
    with_nan[0, 0] = np.nan
    assert not signatures_match(reference, signature(with_nan))
