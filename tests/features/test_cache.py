"""The feature cache: hits, a miss for each part of the key, interruptions, damage."""

import json
import multiprocessing
import os
import socket

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_smalldata.features import (
    CorruptedCacheWarning,
    extract_features,
)
from keras_smalldata.features import cache as cache_module
from keras_smalldata.features._npy_writer import NpyAppender
from tests.features._concurrent_writer import fill_cache_in_rounds
from tests.features.conftest import (
    constant_picture,
    conv_model,
    mean_model,
)


def _images(n, size=16, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


def _entries(cache_dir):
    return sorted(p.name for p in cache_dir.iterdir() if p.is_dir())


def _extract(model, data, cache_dir, **kwargs):
    return extract_features(model, data, cache_dir=cache_dir, verbose=0, **kwargs)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "pictures"
    for k in range(12):
        constant_picture(root / ("a" if k < 6 else "b") / f"img_{k:02d}.png", 10 * k + 3, size=16)
    return root


def _directory_dataset(root, **kwargs):
    kwargs.setdefault("image_size", (16, 16))
    kwargs.setdefault("batch_size", 5)
    return keras.utils.image_dataset_from_directory(root, verbose=False, **kwargs)


def test_same_inputs_load_from_cache(tmp_path, folder):
    model = conv_model()
    first = _extract(model, _directory_dataset(folder, shuffle=False), tmp_path / "c")
    assert not first.from_cache and len(first) == 12
    second = _extract(model, _directory_dataset(folder, shuffle=False), tmp_path / "c")
    assert second.from_cache and second.cache_path == first.cache_path
    assert isinstance(second.features, np.memmap)
    np.testing.assert_array_equal(second.features, first.features)
    np.testing.assert_array_equal(second.labels, first.labels)
    assert second.class_names == ["a", "b"]
    assert _entries(tmp_path / "c") == [first.cache_path.name]
    manifest = json.loads((first.cache_path / "manifest.json").read_text())
    assert manifest["num_samples"] == 12 and manifest["feature_shape"] == [7, 7, 4]
    for name in ("features", "labels"):  # plain .npy files, no pickle
        np.load(first.cache_path / manifest[name]["file"], allow_pickle=False)


class _CountingIdentity(keras.layers.Layer):
    """An augmentation of our own that counts the pictures it sees."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.pictures = 0

    def call(self, images):
        self.pictures += int(images.shape[0])
        return images


def test_hit_is_not_recomputed(tmp_path):
    # A hit runs neither the model nor the augmentation (code of ours, cached
    # under a key of ours).
    x = _images(10)
    counting = _CountingIdentity()
    kwargs = dict(augmentation=counting, augment_rounds=1, batch_size=4, cache_key="counting")
    first = _extract(conv_model(), x, tmp_path, **kwargs)
    assert not first.from_cache and counting.pictures == 10
    again = _extract(conv_model(), x, tmp_path, **kwargs)
    assert again.from_cache and counting.pictures == 10
    np.testing.assert_array_equal(again.features, first.features)


def test_shuffled_dataset_and_rebuilt_model_hit(tmp_path, folder):
    # A reshuffling dataset and the same model built again (new automatic
    # layer names) are the same inputs.
    first = _extract(conv_model(seed=1), _directory_dataset(folder, shuffle=True), tmp_path)
    second = _extract(conv_model(seed=1), _directory_dataset(folder, shuffle=True), tmp_path)
    assert second.from_cache
    # The batch size is in the key (a model may compute a row from its batch).
    rebatched = _extract(conv_model(seed=1), _directory_dataset(folder, shuffle=True), tmp_path, batch_size=3)
    other_batches = _extract(conv_model(seed=1), _directory_dataset(folder, batch_size=3), tmp_path)
    assert not rebatched.from_cache and other_batches.from_cache
    # Content-hashed datasets (no file list) too: order does not matter.
    x, y = _images(9), np.arange(9)
    tensors = tf.data.Dataset.from_tensor_slices((x, y))
    cold = _extract(conv_model(seed=1), tensors.shuffle(9).batch(4), tmp_path)
    warm = _extract(conv_model(seed=1), tensors.shuffle(9).batch(4), tmp_path)
    assert not cold.from_cache and warm.from_cache
    assert not _extract(conv_model(seed=1), tensors.shuffle(9).batch(2), tmp_path).from_cache
    assert not first.cache_path == cold.cache_path


def test_miss_on_each_model_part(tmp_path):
    x = _images(6)
    base = conv_model(seed=0)
    assert not _extract(base, x, tmp_path).from_cache
    assert _extract(base, x, tmp_path).from_cache
    changed_weights = conv_model(seed=0)
    weights = changed_weights.get_weights()
    weights[0] = weights[0] + 0.001
    changed_weights.set_weights(weights)
    moving_mean = conv_model(seed=0)  # a non-trainable weight
    bn = moving_mean.layers[-1]
    bn.moving_mean.assign(bn.moving_mean + 1.0)
    architecture = keras.Sequential(
        [keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3, strides=2, padding="same")]
    )
    preprocessing = conv_model(seed=0, scale=1 / 255)
    other_preprocessing = conv_model(seed=0, scale=1 / 127.5)
    paths = set()
    for model in (changed_weights, moving_mean, architecture, preprocessing, other_preprocessing):
        result = _extract(model, x, tmp_path)
        assert not result.from_cache
        paths.add(result.cache_path)
        assert _extract(model, x, tmp_path).from_cache
    assert len(paths) == 5


def test_miss_on_input_size(tmp_path, folder):
    small = _extract(mean_model(size=16), _directory_dataset(folder, image_size=(16, 16)), tmp_path)
    big = _extract(mean_model(size=20), _directory_dataset(folder, image_size=(20, 20)), tmp_path)
    assert not big.from_cache and big.cache_path != small.cache_path
    inputs = keras.Input((None, None, 3))
    any_size = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))
    _extract(any_size, _images(4, size=16), tmp_path)
    assert not _extract(any_size, _images(4, size=20)[:, :16], tmp_path).from_cache


def _rewrite_keeping_size_and_time(path, value):
    """Rewrites a picture with new pixels, then gives it back its size and times."""
    stat = path.stat()
    constant_picture(path, value, size=16)
    assert path.stat().st_size == stat.st_size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_miss_on_file_changes(tmp_path, folder):
    model = mean_model(size=16)

    def extract():
        return _extract(model, _directory_dataset(folder, shuffle=False), tmp_path)

    first = extract()
    assert np.rint(first.features[0, 0]) == 3
    # New content, same size and modification time (as after `cp -p` or `rsync -t`).
    _rewrite_keeping_size_and_time(folder / "a" / "img_00.png", 200)
    changed = extract()
    assert not changed.from_cache and np.rint(changed.features[0, 0]) == 200
    # Two files swapped between the classes, sizes and times kept: the labels follow the bytes.
    a, b = folder / "a" / "img_01.png", folder / "b" / "img_06.png"
    a_bytes, b_bytes = a.read_bytes(), b.read_bytes()
    a_stat, b_stat = a.stat(), b.stat()
    assert a_stat.st_size == b_stat.st_size
    a.write_bytes(b_bytes)
    b.write_bytes(a_bytes)
    os.utime(a, ns=(a_stat.st_atime_ns, a_stat.st_mtime_ns))
    os.utime(b, ns=(b_stat.st_atime_ns, b_stat.st_mtime_ns))
    swapped = extract()
    assert not swapped.from_cache
    values = np.rint(swapped.features[:, 0]).astype(int).tolist()
    assert values[1] == 63 and values[6] == 13  # a/img_01 now holds picture 6, b/img_06 picture 1
    assert swapped.labels.tolist() == [0] * 6 + [1] * 6
    # Only the modification time changes: the pictures are the same, a hit.
    stat = b.stat()
    os.utime(b, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert extract().from_cache
    # An added file.
    constant_picture(folder / "b" / "img_99.png", 77, size=16)
    added = extract()
    assert not added.from_cache and len(added) == 13


def test_miss_on_pipeline_options(tmp_path, folder):
    model = mean_model(size=16)
    base = _extract(model, _directory_dataset(folder), tmp_path)
    for options in (
        {"interpolation": "nearest"},
        {"crop_to_aspect_ratio": True},
        {"label_mode": "binary"},
        {"labels": [0, 1] * 6},
        {"labels": [1, 0] * 6},
        {"class_names": ["b", "a"]},
    ):
        result = _extract(model, _directory_dataset(folder, **options), tmp_path)
        assert not result.from_cache, options
        assert result.cache_path != base.cache_path
    assert _extract(model, _directory_dataset(folder, labels=[1, 0] * 6), tmp_path).from_cache


def test_only_a_directory_dataset_as_keras_gives_it_is_keyed_by_its_files(tmp_path, folder):
    # Keras' own pipeline is keyed by the files' bytes and its options,
    # without a pass over the pictures; any step added to it (a map, a
    # prefetch, a take) makes it a dataset keyed by what it gives.
    from keras_smalldata.features._sources import make_source

    def preprocess(x, y):  # TensorFlow ops: tf.data runs them on every backend
        return tf.reverse(x, axis=[-1]) - tf.constant([103.939, 116.779, 123.68]), y

    parts = make_source(_directory_dataset(folder), None, (None, 16, 16, 3)).fingerprint()
    assert "files" in parts and "content" not in parts and parts["batch_size"] == 5
    scale = tf.Variable(2.0)
    for dataset in (
        _directory_dataset(folder).map(preprocess).prefetch(2),
        _directory_dataset(folder).take(1),
        _directory_dataset(folder).map(lambda x, y: (x * scale, y)),
    ):
        parts = make_source(dataset, None, (None, 16, 16, 3)).fingerprint()
        assert "content" in parts and "files" not in parts
    model = mean_model(size=16)
    mapped = _extract(model, _directory_dataset(folder).map(preprocess).prefetch(2), tmp_path)
    assert mapped.class_names is None and len(mapped) == 12  # class_names belong to Keras' dataset
    assert _extract(model, _directory_dataset(folder).map(preprocess).prefetch(2), tmp_path).from_cache
    assert not _extract(model, _directory_dataset(folder).map(lambda x, y: (x / 255.0, y)), tmp_path).from_cache
    taken = _extract(model, _directory_dataset(folder, shuffle=False).take(1), tmp_path)
    assert len(taken) == 5 and not taken.from_cache


def test_miss_on_array_content_and_labels(tmp_path):
    model = conv_model()
    x, y = _images(8), np.arange(8)
    _extract(model, (x, y), tmp_path)
    x2 = x.copy()
    x2[3, 5, 5, 1] += 1
    assert not _extract(model, (x2, y), tmp_path).from_cache
    assert not _extract(model, (x, y[::-1]), tmp_path).from_cache
    assert not _extract(model, x, tmp_path).from_cache  # no labels
    assert not _extract(model, (x[::-1], y), tmp_path).from_cache  # order of arrays
    assert not _extract(model, (x, y), tmp_path, class_names=["x"] * 8).from_cache
    tensors = tf.data.Dataset.from_tensor_slices((x, y)).batch(3)
    assert not _extract(model, tensors, tmp_path).from_cache
    changed = tf.data.Dataset.from_tensor_slices((x2, y)).batch(3)
    assert not _extract(model, changed, tmp_path).from_cache


def test_miss_on_augmentation_settings(tmp_path):
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Flatten()])
    x = _images(5)
    flip = keras.layers.RandomFlip("horizontal", seed=1)
    base = dict(augmentation=flip, augment_rounds=1, seed=3)
    variants = [
        base,
        {**base, "augmentation": keras.layers.RandomFlip("vertical", seed=1)},
        {**base, "augmentation": keras.layers.RandomFlip("horizontal", seed=2)},
        {**base, "augmentation": keras.layers.RandomRotation(0.1, seed=1)},
        {**base, "augment_rounds": 2},
        {**base, "seed": 4},
        {**base, "include_original": False},
        {},
    ]
    paths = set()
    for kwargs in variants:
        result = _extract(model, x, tmp_path, **kwargs)
        assert not result.from_cache, kwargs
        paths.add(result.cache_path)
        again = _extract(model, x, tmp_path, **kwargs)
        assert again.from_cache, kwargs
        np.testing.assert_array_equal(again.features, result.features)
    assert len(paths) == len(variants)

    def darker(images):
        return images * 0.5

    def lighter(images):
        return images * 1.5

    # Functions are code of ours: cached under our own keys.
    kwargs = dict(augment_rounds=1, cache_key="v1")
    assert not _extract(model, x, tmp_path, augmentation=darker, **kwargs).from_cache
    assert _extract(model, x, tmp_path, augmentation=darker, **kwargs).from_cache
    assert not _extract(model, x, tmp_path, augmentation=lighter, **{**kwargs, "cache_key": "v2"}).from_cache


def test_an_augmentation_used_before_still_hits(tmp_path):
    # A Keras layer's configuration gains a `build_config` once it has been
    # called; that does not change what it computes.
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Flatten()])
    x = _images(4)
    augmentation = keras.Sequential([keras.layers.RandomFlip(seed=1), keras.layers.RandomRotation(0.1, seed=2)])
    kwargs = dict(augmentation=augmentation, augment_rounds=1, seed=3)
    first = _extract(model, x, tmp_path, **kwargs)  # builds the augmentation
    again = _extract(model, x, tmp_path, **kwargs)
    assert not first.from_cache and again.from_cache
    np.testing.assert_array_equal(again.features, first.features)


def test_interrupted_extraction_leaves_no_complete_entry(tmp_path):
    model = conv_model()
    x = _images(20)
    seen = {"batches": 0}

    def stop_after_two(images):
        seen["batches"] += 1
        if seen["batches"] == 3:
            raise KeyboardInterrupt
        return images

    kwargs = dict(augmentation=stop_after_two, augment_rounds=1, batch_size=4, cache_key="stop")
    with pytest.raises(KeyboardInterrupt):
        _extract(model, x, tmp_path, **kwargs)
    (entry,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert list(entry.iterdir()) == []  # temporary files removed, no manifest
    seen["batches"] = 10  # the same function now runs through
    result = _extract(model, x, tmp_path, **kwargs)
    assert not result.from_cache and len(result) == 40
    np.testing.assert_allclose(result.features[20:], result.features[:20])


def test_killed_extraction_is_not_taken_for_complete(tmp_path):
    # A process killed mid-way leaves a temporary file and no manifest.
    model = conv_model()
    x = _images(7)
    reference = extract_features(model, x, verbose=0)
    result = _extract(model, x, tmp_path)
    entry = result.cache_path
    (entry / "manifest.json").unlink()
    host = socket.gethostname().replace(".", "_")
    dead_pid = 2**22 + 12345  # above the default pid_max: no such process
    orphan = entry / f".features-0123.npy.{host}.{dead_pid}.abcd1234.tmp"
    orphan.write_bytes(b"partial")
    alive = entry / f".features-4567.npy.{host}.1.beef0000.tmp"
    alive.write_bytes(b"partial")
    again = _extract(model, x, tmp_path)
    assert not again.from_cache
    np.testing.assert_allclose(again.features, reference.features, rtol=1e-6)
    assert not orphan.exists()  # the dead process's leftover is swept
    assert alive.exists()  # a live process's file is left alone
    assert _extract(model, x, tmp_path).from_cache


def test_npy_appender_grows_and_rewrites_header(tmp_path):
    writer = NpyAppender(tmp_path / "rows.npy")
    chunks = [np.full((n, 2, 3), n, dtype="float16") for n in (1, 9, 90, 900, 3)]
    for chunk in chunks:
        writer.append(chunk)
    os.replace(writer.finish(), writer.final_path)
    loaded = np.load(writer.final_path, allow_pickle=False)
    np.testing.assert_array_equal(loaded, np.concatenate(chunks))
    with pytest.raises(ValueError, match="same per-sample shape"):
        other = NpyAppender(tmp_path / "other.npy")
        other.append(np.zeros((2, 3)))
        try:
            other.append(np.zeros((2, 4)))
        finally:
            other.discard()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.npy"]


@pytest.mark.parametrize(
    "damage",
    ["truncate", "flip_byte", "garbage_header", "delete_labels", "bad_manifest", "manifest_shape"],
)
def test_damaged_entry_is_recomputed_with_a_warning(tmp_path, damage):
    model = conv_model()
    x, y = _images(9), np.arange(9)
    first = _extract(model, (x, y), tmp_path)
    entry = first.cache_path
    manifest_path = entry / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    features_path = entry / manifest["features"]["file"]
    reference = np.array(first.features)
    del first
    if damage == "truncate":
        data = features_path.read_bytes()
        features_path.write_bytes(data[: len(data) - 100])
    elif damage == "flip_byte":
        data = bytearray(features_path.read_bytes())
        data[-5] ^= 0xFF
        features_path.write_bytes(bytes(data))
    elif damage == "garbage_header":
        data = bytearray(features_path.read_bytes())
        data[:20] = b"not a numpy file...."
        features_path.write_bytes(bytes(data))
    elif damage == "delete_labels":
        (entry / manifest["labels"]["file"]).unlink()
    elif damage == "bad_manifest":
        manifest_path.write_text("{ this is not json")
    elif damage == "manifest_shape":
        manifest["features"]["shape"][0] = 10
        manifest_path.write_text(json.dumps(manifest))
    with pytest.warns(CorruptedCacheWarning, match="damaged"):
        again = _extract(model, (x, y), tmp_path)
    assert not again.from_cache
    np.testing.assert_allclose(again.features, reference, rtol=1e-6)
    np.testing.assert_array_equal(again.labels, y)
    # The rewritten entry is whole again, and old files are gone.
    assert _extract(model, (x, y), tmp_path).from_cache
    npy = sorted(p.name for p in entry.iterdir() if p.suffix == ".npy")
    assert len(npy) == 2


def test_cache_dir_that_is_a_file(tmp_path):
    target = tmp_path / "a_file"
    target.write_text("hello")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        _extract(conv_model(), _images(2), target)
    assert target.read_text() == "hello"


def test_unwritable_cache_dir_is_a_clear_error_before_any_work(tmp_path, monkeypatch):
    calls = {"n": 0}

    def counting(images):
        calls["n"] += 1
        return images

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(cache_module.tempfile, "mkstemp", refuse)
    with pytest.raises(PermissionError, match="is not writable"):
        _extract(
            conv_model(), _images(3), tmp_path / "ro", augmentation=counting, augment_rounds=1,
            cache_key="counting",
        )
    assert calls["n"] == 0


def test_cache_dir_below_a_file(tmp_path):
    # A folder that cannot be created, even by root.
    target = tmp_path / "a_file"
    target.write_text("hello")
    with pytest.raises((PermissionError, ValueError, NotADirectoryError), match="a_file"):
        _extract(conv_model(), _images(2), target / "cache")
    assert target.read_text() == "hello"


def test_read_only_cache_still_serves_hits(tmp_path, monkeypatch):
    model, x = conv_model(), _images(4)
    _extract(model, x, tmp_path)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(cache_module.tempfile, "mkstemp", refuse)
    assert _extract(model, x, tmp_path).from_cache


def test_cached_features_stay_on_disk(tmp_path):
    # The result is a read-only memory map onto the cache file.
    result = _extract(conv_model(), _images(5), tmp_path)
    assert isinstance(result.features, np.memmap) and not result.features.flags.writeable


class _Recording(keras.layers.Layer):
    """A layer of our own on top of a base: records the batch sizes it is called on."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seen = []

    def call(self, x):
        self.seen.append(x.shape[0])
        return x

    def compute_output_shape(self, input_shape):
        return input_shape


def test_a_hit_under_a_cache_key_checks_the_first_batch_only(tmp_path):
    # Under cache_key, a hit runs a model with code of ours on the first
    # batch stored with the entry, not over the data.
    inputs = keras.Input((16, 16, 3))
    recording = _Recording()
    model = keras.Model(inputs, recording(keras.layers.Conv2D(8, 3, strides=4)(inputs)))
    kwargs = dict(batch_size=4, cache_key="recording")
    first = _extract(model, _images(10), tmp_path, **kwargs)
    manifest = json.loads((first.cache_path / "manifest.json").read_text())
    assert manifest["check"]["shape"] == [4, 16, 16, 3]
    stored = np.load(first.cache_path / manifest["check"]["file"], allow_pickle=False)
    np.testing.assert_array_equal(stored, _images(10)[:4])
    recording.seen.clear()
    again = _extract(model, _images(10), tmp_path, **kwargs)
    assert again.from_cache and recording.seen == [4]  # one batch of 4, traced or run once
    # Keras' own layers need no check: no stored batch.
    plain = _extract(conv_model(), _images(10), tmp_path, **kwargs)
    assert json.loads((plain.cache_path / "manifest.json").read_text())["check"] is None


def test_infinite_dataset_is_refused_at_once(tmp_path):
    x = _images(4)
    for dataset in (
        tf.data.Dataset.from_tensor_slices(x).repeat(),
        tf.data.Dataset.from_tensor_slices((x, np.arange(4))).batch(2).repeat(),
    ):
        assert int(dataset.cardinality()) == tf.data.INFINITE_CARDINALITY
        for cache_dir in (None, tmp_path):
            with pytest.raises(ValueError, match=r"infinite dataset.*\.repeat\(\)"):
                extract_features(conv_model(), dataset, cache_dir=cache_dir, verbose=0)
    assert list(tmp_path.iterdir()) == []


def test_unknown_size_shows_progress_without_a_total(capsys):
    x = _images(7)
    dataset = tf.data.Dataset.from_tensor_slices(x).filter(lambda image: True).batch(3)
    assert int(dataset.cardinality()) == tf.data.UNKNOWN_CARDINALITY
    result = extract_features(conv_model(), dataset, verbose=1)
    assert len(result) == 7
    out = capsys.readouterr().out
    assert "7/Unknown" in out and "samples/s" in out


def test_concurrent_writers_both_finish_with_one_valid_entry(tmp_path):
    # This process and a second, real one fill the same cache at the same
    # moment, round after round (before the fix, most rounds failed).
    rounds = 6
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    results = context.Queue()
    other = context.Process(target=fill_cache_in_rounds, args=(str(tmp_path), rounds, barrier, results))
    other.start()
    try:
        fill_cache_in_rounds(str(tmp_path), rounds, barrier, results)
        outcomes = [results.get(timeout=300) for _ in range(2 * rounds)]
    finally:
        other.join(timeout=300)
    assert other.exitcode == 0
    assert [message for _, status, message, _ in outcomes if status != "ok"] == []
    model = conv_model(seed=0)
    x = np.random.default_rng(0).uniform(0, 255, (12, 16, 16, 3)).astype("float32")
    expected = extract_features(model, (x, np.arange(12)), batch_size=4, verbose=0)
    for _, _, features, labels in outcomes:
        np.testing.assert_allclose(features, expected.features, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(labels, np.arange(12))
    for round_ in range(rounds):
        folder = tmp_path / str(round_)
        (entry,) = [p for p in folder.iterdir() if p.is_dir()]
        manifest = json.loads((entry / "manifest.json").read_text())
        named = {manifest["features"]["file"], manifest["labels"]["file"]}
        assert sorted(p.name for p in entry.iterdir()) == sorted(named | {"manifest.json"})
        hit = extract_features(model, (x, np.arange(12)), batch_size=4, cache_dir=folder, verbose=0)
        assert hit.from_cache
