"""When the feature cache is used: never a result the key cannot vouch for (issue 23).

Each test of an issue-23 case compares with the features computed
independently (NumPy, or the model called directly): the cache may only
ever give what an uncached call gives.
"""

import json
import os
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_smalldata.features import StaleCacheWarning, extract_features
from tests.features.conftest import conv_model, pattern_picture

SIZE = 16


def _not_used_warning():
    from keras_smalldata.features import CacheNotUsedWarning

    return CacheNotUsedWarning


@pytest.fixture(scope="module")
def patterns(tmp_path_factory):
    """24 pictures with no flip or rotation symmetry, in two class folders (k < 12: class a)."""
    root = tmp_path_factory.mktemp("patterns")
    for k in range(24):
        pattern_picture(root / ("a" if k < 12 else "b") / f"img_{k:02d}.png", k, size=SIZE)
    return root


def _directory(root, **kwargs):
    kwargs.setdefault("batch_size", 8)
    kwargs.setdefault("shuffle", False)
    return keras.utils.image_dataset_from_directory(
        root, image_size=(SIZE, SIZE), verbose=False, **kwargs
    )


def _pictures(root):
    """The pictures and labels of the folder, in file order, as NumPy arrays."""
    pairs = list(_directory(root).unbatch().as_numpy_iterator())
    return np.stack([x for x, _ in pairs]), np.array([y for _, y in pairs])


def _flatten_model():
    return keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Flatten()])


def _extract(model, data, cache_dir, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the cache-not-used warning has its own tests
        return extract_features(model, data, cache_dir=cache_dir, verbose=0, **kwargs)


def _images(n, size=SIZE, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


# ----------------------------------------------------------- issue-23 cases


@pytest.mark.parametrize("cache", [False, True])
def test_a_captured_constant_in_a_map_gives_its_own_features(patterns, tmp_path, cache):
    # Issue 23, case 2: k=2 was served the entry made with k=1.
    x, _ = _pictures(patterns)
    model = _flatten_model()

    def rotated(turns):  # the map captures the tensor `turns`
        return _directory(patterns).map(lambda images, labels: (tf.image.rot90(images, k=turns), labels))

    for k in (1, 2, 3, 1):
        data = rotated(tf.constant(k))
        result = _extract(model, data, tmp_path if cache else None)
        expected = np.rot90(x, k=k, axes=(1, 2)).reshape(len(x), -1)
        np.testing.assert_array_equal(result.features, expected)


def test_captured_label_offsets_give_their_own_labels(patterns, tmp_path):
    # Issue 23, case 2: a captured label offset brought back the old labels.
    _, y = _pictures(patterns)
    model = _flatten_model()

    def shifted(shift):  # the map captures the tensor `shift`
        return _directory(patterns).map(lambda images, labels: (images, labels + shift))

    for offset in (0, 10, 0, 5):
        data = shifted(tf.constant(offset, dtype=tf.int32))
        result = _extract(model, data, tmp_path)
        np.testing.assert_array_equal(result.labels, y + offset)


@pytest.fixture
def no_global_tensorflow_seed():
    """Unsets TensorFlow's global seed for the test (an earlier test may have set it).

    With a global seed, TensorFlow's unseeded random ops in a dataset repeat the
    same draws on every pass: the map is then deterministic, and caching it is
    right. These tests are about a map that draws anew on each pass.
    """
    tf.random.set_seed(None)
    yield


def test_a_random_map_draws_anew_on_every_call(patterns, tmp_path, no_global_tensorflow_seed):
    # Issue 23, case 3: tf.image.random_flip_left_right in a map was served
    # the first call's draws.
    x, _ = _pictures(patterns)
    flat, mirrored = x.reshape(len(x), -1), x[:, :, ::-1].reshape(len(x), -1)
    model = _flatten_model()

    def flips(result):
        rows = np.asarray(result.features)
        is_flat = (rows == flat).all(axis=1)
        is_mirrored = (rows == mirrored).all(axis=1)
        assert (is_flat ^ is_mirrored).all()  # each row is its picture, flipped or not
        return is_mirrored

    draws = []
    for _ in range(3):
        data = _directory(patterns).map(lambda images, labels: (tf.image.random_flip_left_right(images), labels))
        draws.append(flips(_extract(model, data, tmp_path)))
    # 24 fair coins per call: the same draws twice by chance has probability 2**-24.
    assert not np.array_equal(draws[0], draws[1]) and not np.array_equal(draws[1], draws[2])


@pytest.mark.parametrize("layer_seed", [None, 1])
def test_augment_rounds_without_seed_draw_anew_on_every_call(patterns, tmp_path, layer_seed):
    # Issue 23, case 3: augment_rounds with Keras random layers, seeded or
    # not, returned the first call's draws; an uncached call draws anew.
    x, y = _pictures(patterns)
    mirrored = x[:, :, ::-1].reshape(len(x), -1)
    flip = keras.layers.RandomFlip("horizontal", seed=layer_seed)
    model = _flatten_model()
    draws = []
    for _ in range(3):
        result = _extract(model, (x, y), tmp_path, augmentation=flip, augment_rounds=1)
        np.testing.assert_array_equal(result.features[:24], x.reshape(24, -1))
        draws.append((np.asarray(result.features[24:]) == mirrored).all(axis=1))
    assert not np.array_equal(draws[0], draws[1]) and not np.array_equal(draws[1], draws[2])


def test_augment_rounds_with_seed_are_cached_and_equal_an_uncached_call(patterns, tmp_path):
    # seed= sets every random layer's generator: the draws are a function of
    # the seed, which is in the key, so a hit is exactly an uncached call.
    x, y = _pictures(patterns)
    flip = keras.Sequential([keras.layers.RandomFlip("horizontal"), keras.layers.RandomRotation(0.2)])
    kwargs = dict(augmentation=flip, augment_rounds=2, seed=5)
    uncached = extract_features(_flatten_model(), (x, y), verbose=0, **kwargs)
    first = _extract(_flatten_model(), (x, y), tmp_path, **kwargs)
    again = _extract(_flatten_model(), (x, y), tmp_path, **kwargs)
    assert not first.from_cache and again.from_cache
    np.testing.assert_allclose(first.features, uncached.features, atol=1e-4)
    np.testing.assert_array_equal(again.features, first.features)
    other = _extract(_flatten_model(), (x, y), tmp_path, **{**kwargs, "seed": 6})
    assert not other.from_cache and not np.allclose(other.features[24:], first.features[24:])


def _batch_centred_model():
    inputs = keras.Input((SIZE, SIZE, 3))
    means = keras.layers.GlobalAveragePooling2D()(inputs)
    centred = keras.layers.Lambda(lambda m: m - keras.ops.mean(m, axis=0, keepdims=True))(means)
    return keras.Model(inputs, centred)


def _batch_centred(x, batch_size):
    means = x.astype("float64").mean(axis=(1, 2))
    blocks = [means[i : i + batch_size] for i in range(0, len(means), batch_size)]
    return np.concatenate([block - block.mean(axis=0) for block in blocks])


@pytest.mark.parametrize("cache_key", [None, "centred-v1"])
def test_a_batch_dependent_model_is_not_served_at_another_batch_size(tmp_path, cache_key):
    # Issue 23, case 4: the entry made at batch size 16 was served at 8.
    x = _images(32)
    model = _batch_centred_model()
    kwargs = {} if cache_key is None else {"cache_key": cache_key}
    for batch_size in (16, 8, 16):
        result = _extract(model, x, tmp_path, batch_size=batch_size, **kwargs)
        np.testing.assert_allclose(result.features, _batch_centred(x, batch_size), rtol=1e-4, atol=1e-3)


# ------------------------------------------------ where the cache is not used


class _Doubling(keras.layers.Layer):
    """A layer of the user's own (its code is not in any key)."""

    def call(self, x):
        return x * 2.0


def _model_with(layer):
    inputs = keras.Input((SIZE, SIZE, 3))
    return keras.Model(inputs, keras.layers.Flatten()(layer(inputs)))


def _custom_activation(x):
    return x * 3.0


_UNKEYABLE = {
    "a layer class of yours": (lambda: _model_with(_Doubling()), {}, "_Doubling"),
    "a Lambda layer": (lambda: _model_with(keras.layers.Lambda(lambda t: t + 1.0)), {}, "Lambda"),
    "an activation of yours": (
        lambda: _model_with(keras.layers.Dense(2, activation=_custom_activation)),
        {},
        "_custom_activation",
    ),
    "an augmentation function": (
        _flatten_model,
        {"augmentation": lambda images: images[:, ::-1], "augment_rounds": 1},
        "function",
    ),
    "random layers without seed=": (
        _flatten_model,
        {"augmentation": keras.layers.RandomFlip(seed=3), "augment_rounds": 1},
        "seed=",
    ),
}


@pytest.mark.parametrize("case", sorted(_UNKEYABLE))
def test_what_the_key_cannot_vouch_for_is_computed_without_the_cache(tmp_path, case):
    build, kwargs, named = _UNKEYABLE[case]
    model, x = build(), _images(5)
    expected = extract_features(model, x, verbose=0, **kwargs)
    for _ in range(2):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = extract_features(model, x, cache_dir=tmp_path, verbose=0, **kwargs)
        ours = [w for w in caught if w.category is _not_used_warning()]
        assert len(ours) == 1, [str(w.message) for w in caught]  # one warning, naming the reason
        message = str(ours[0].message)
        assert named in message and "cache_key=" in message
        assert not result.from_cache and result.cache_path is None
        if "augmentation" not in kwargs:
            np.testing.assert_allclose(result.features, expected.features, rtol=1e-6)
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize("case", sorted(_UNKEYABLE))
def test_a_cache_key_of_yours_caches_it(tmp_path, case):
    build, kwargs, _ = _UNKEYABLE[case]
    model, x = build(), _images(5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", _not_used_warning())
        first = extract_features(model, x, cache_dir=tmp_path, cache_key="v1", verbose=0, **kwargs)
        again = extract_features(model, x, cache_dir=tmp_path, cache_key="v1", verbose=0, **kwargs)
        other = extract_features(model, x, cache_dir=tmp_path, cache_key="v2", verbose=0, **kwargs)
    assert not first.from_cache and again.from_cache and not other.from_cache
    np.testing.assert_array_equal(again.features, first.features)
    assert other.cache_path != first.cache_path
    # The key joins what the library reads: other pictures under the same key are another entry.
    changed = extract_features(model, _images(5, seed=1), cache_dir=tmp_path, cache_key="v1", verbose=0, **kwargs)
    assert not changed.from_cache and changed.cache_path != first.cache_path


def test_a_subclassed_model_is_code_of_yours(tmp_path):
    class Doubling(keras.Model):
        def call(self, x):
            return keras.ops.reshape(x, (keras.ops.shape(x)[0], -1)) * 2.0

    x = _images(3, size=4)
    with pytest.warns(_not_used_warning(), match="Doubling"):
        result = extract_features(Doubling(), x, cache_dir=tmp_path, verbose=0)
    np.testing.assert_allclose(result.features, 2 * x.reshape(3, -1), rtol=1e-6)
    assert list(tmp_path.iterdir()) == []


def test_keras_and_this_librarys_layers_are_cached_without_a_warning(tmp_path):
    from keras_smalldata.augment import augmentation_preset
    from keras_smalldata.pretrained import PretrainedBase

    base = PretrainedBase("MobileNetV2", weights=None, input_shape=(32, 32, 3), pooling="avg")
    augmentation = augmentation_preset("flip_rotate_zoom", seed=1)
    x = _images(4, size=32)
    kwargs = dict(augmentation=augmentation, augment_rounds=1, seed=0, batch_size=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", _not_used_warning())
        first = extract_features(base, x, cache_dir=tmp_path, verbose=0, **kwargs)
        again = extract_features(base, x, cache_dir=tmp_path, verbose=0, **kwargs)
        a_keras_function = _model_with(keras.layers.Lambda(keras.ops.abs))
        extract_features(a_keras_function, x[:, :16, :16], cache_dir=tmp_path, verbose=0)
        assert extract_features(a_keras_function, x[:, :16, :16], cache_dir=tmp_path, verbose=0).from_cache
    assert not first.from_cache and again.from_cache


_FAKE_PACKAGE = '''
import keras


@keras.saving.register_keras_serializable(package="fakelayers")
class Halve(keras.layers.Layer):
    def call(self, x):
        return x * 0.5
'''


def _install_fake_package(site, version, editable=False):
    """A package 'fakelayers' as pip installs it: the module and its .dist-info."""
    (site / "fakelayers").mkdir(parents=True, exist_ok=True)
    (site / "fakelayers" / "__init__.py").write_text(_FAKE_PACKAGE)
    for old in site.glob("fakelayers-*.dist-info"):
        for path in old.iterdir():
            path.unlink()
        old.rmdir()
    info = site / f"fakelayers-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fakelayers\nVersion: {version}\n")
    (info / "top_level.txt").write_text("fakelayers\n")
    if editable:
        (info / "direct_url.json").write_text(json.dumps({"url": "file:///src", "dir_info": {"editable": True}}))


def test_registered_layers_of_installed_packages_are_keyed_by_their_version(tmp_path, monkeypatch):
    import importlib
    import sys

    site = tmp_path / "site"
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "fakelayers", raising=False)
    _install_fake_package(site, "1.0")
    importlib.invalidate_caches()
    fakelayers = importlib.import_module("fakelayers")
    model, x = _model_with(fakelayers.Halve()), _images(3)
    cache = tmp_path / "cache"
    with warnings.catch_warnings():
        warnings.simplefilter("error", _not_used_warning())
        first = extract_features(model, x, cache_dir=cache, verbose=0)
        assert extract_features(model, x, cache_dir=cache, verbose=0).from_cache
        _install_fake_package(site, "1.1")  # a new version: another entry
        upgraded = extract_features(model, x, cache_dir=cache, verbose=0)
    assert not first.from_cache and not upgraded.from_cache
    np.testing.assert_allclose(upgraded.features, 0.5 * x.reshape(3, -1), rtol=1e-6)
    # An editable install (pip install -e): its code changes without a new version.
    _install_fake_package(site, "1.1", editable=True)
    with pytest.warns(_not_used_warning(), match="Halve"):
        assert not extract_features(model, x, cache_dir=cache, verbose=0).from_cache


def test_a_deterministic_map_is_cached_by_what_it_gives(patterns, tmp_path):
    # The content of the pictures and labels that come out of the pipeline is
    # the key: the same map hits, another one (or other captured values) misses.
    x, y = _pictures(patterns)
    model = _flatten_model()

    def mapped(scale):
        factor = tf.constant(scale)
        return _directory(patterns, shuffle=True).map(lambda images, labels: (images * factor, labels)).prefetch(2)

    with warnings.catch_warnings():
        warnings.simplefilter("error", _not_used_warning())
        first = _extract(model, mapped(0.5), tmp_path)
        again = _extract(model, mapped(0.5), tmp_path)
        other = _extract(model, mapped(0.25), tmp_path)
    assert not first.from_cache and again.from_cache and not other.from_cache
    np.testing.assert_array_equal(again.features, first.features)
    for result, scale in ((first, 0.5), (other, 0.25)):
        # The pass reshuffled: each row is one picture, scaled, with its own label.
        rows = {tuple(row): label for row, label in zip(np.asarray(result.features), result.labels)}
        expected = {tuple(scale * picture.reshape(-1)): label for picture, label in zip(x, y)}
        assert rows == expected


def test_a_random_map_is_named_in_the_warning(patterns, tmp_path, no_global_tensorflow_seed):
    data = _directory(patterns).map(lambda images, labels: (tf.image.random_flip_left_right(images), labels))
    with pytest.warns(_not_used_warning(), match="other pictures or labels"):
        result = extract_features(_flatten_model(), data, cache_dir=tmp_path, verbose=0)
    assert result.cache_path is None and len(result) == 24
    assert not any(p.name == "manifest.json" for p in tmp_path.rglob("*"))


class _ScaleFromEnvironment(keras.layers.Layer):
    """Reads its factor from the environment: what no key can see."""

    def call(self, x):
        return x * float(os.environ["KS_TEST_FACTOR"])


def test_a_broken_cache_key_promise_is_caught_on_the_first_batch(tmp_path, monkeypatch):
    # Under cache_key, a hit for a model with code of yours runs the model
    # again on the first batch stored with the entry: if it computes
    # something else now, the entry is stale.
    monkeypatch.setenv("KS_TEST_FACTOR", "2")
    model, x = _model_with(_ScaleFromEnvironment()), _images(6)
    kwargs = dict(cache_dir=tmp_path, cache_key="scale", batch_size=4, verbose=0)
    first = extract_features(model, x, **kwargs)
    assert extract_features(model, x, **kwargs).from_cache
    monkeypatch.setenv("KS_TEST_FACTOR", "3")
    with pytest.warns(StaleCacheWarning, match="cache_key='scale'"):
        changed = extract_features(model, x, **kwargs)
    assert not changed.from_cache
    np.testing.assert_allclose(changed.features, 1.5 * np.asarray(first.features), rtol=1e-6)
    assert extract_features(model, x, **kwargs).from_cache  # the entry was replaced
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 1


@pytest.mark.parametrize(
    "cache_key, error",
    [(123, TypeError), ("", ValueError), (["v1"], TypeError)],
)
def test_bad_cache_keys(tmp_path, cache_key, error):
    with pytest.raises(error, match="cache_key="):
        extract_features(conv_model(), _images(2), cache_dir=tmp_path, cache_key=cache_key, verbose=0)


def test_cache_key_without_cache_dir_is_refused():
    with pytest.raises(ValueError, match="cache_dir"):
        extract_features(conv_model(), _images(2), cache_key="v1", verbose=0)
