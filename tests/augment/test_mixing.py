"""MixUp and CutMix: the pictures and the labels mixed by the same draw, on every backend."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_smalldata.augment import mixing_augmentation
from keras_smalldata.augment.mixing import MIXING_KINDS

BATCH = 8


def random_pictures(batch=BATCH, size=16, seed=0):
    # Values with a fractional part, distinct from picture to picture.
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")


def numpy(x):
    return keras.ops.convert_to_numpy(x)


def partner_and_weight(label_row, own):
    """The other class of a label row, and the weight of the own class."""
    others = [j for j in np.flatnonzero(label_row > 1e-7) if j != own]
    assert len(others) <= 1, label_row
    return (others[0] if others else own), float(label_row[own])


def is_blend(picture, a, b, weight):
    """MixUp: picture = l a + (1 - l) b, with l the label's weight."""
    return np.allclose(picture, weight * a + (1 - weight) * b, atol=2e-3)


def is_cut(picture, a, b, weight):
    """CutMix: each pixel is a's or b's, b's in one rectangle, l the exact share of a's."""
    own = np.all(picture == a, axis=-1)
    pasted = np.all(picture == b, axis=-1) & ~own
    if not np.all(own | pasted) or abs(weight - own.mean()) > 1e-6:
        return False
    if not pasted.any():
        return True
    rows, columns = np.flatnonzero(pasted.any(1)), np.flatnonzero(pasted.any(0))
    return bool(pasted[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1].all())


def check_batch(kind, originals, classes, mixed, labels):
    """Checks every mixed picture against its soft label; returns the methods seen.

    ``classes`` are the pictures' classes, distinct within the batch, so that
    a label row names the two pictures mixed.
    """
    position = {int(c): i for i, c in enumerate(classes)}
    seen = set()
    for i, (picture, row) in enumerate(zip(mixed, labels)):
        partner_class, weight = partner_and_weight(row, int(classes[i]))
        a, b = originals[i], originals[position[partner_class]]
        if b is a:
            assert weight == 1.0 and np.allclose(picture, a, atol=1e-4)
            continue
        blend, cut = is_blend(picture, a, b, weight), is_cut(picture, a, b, weight)
        if kind == "mixup":
            assert blend
        elif kind == "cutmix":
            assert cut
        else:
            assert blend or cut
        if blend != cut:  # (a weight of 1 is both)
            seen.add("mixup" if blend else "cutmix")
    return seen


def test_mixup_weight_recovered_from_constant_pictures_is_the_label_weight():
    values = np.array([0, 30, 60, 90, 120, 150, 180, 210], "float32")
    originals = np.broadcast_to(values[:, None, None, None], (BATCH, 4, 4, 3)).copy()
    mixing = mixing_augmentation("mixup", num_classes=BATCH, alpha=1.0, seed=0)
    mixed, labels = map(numpy, mixing(originals, np.arange(BATCH)))
    assert mixed.dtype == labels.dtype == np.float32
    mixed_somewhere = 0
    for i in range(BATCH):
        assert np.ptp(mixed[i]) == 0  # still constant: the same weight everywhere
        partner, weight = partner_and_weight(labels[i], i)
        if partner == i:
            assert weight == 1
            assert mixed[i, 0, 0, 0] == pytest.approx(values[i], abs=1e-4)
            continue
        mixed_somewhere += 1
        # m = l a + (1 - l) b  =>  l = (m - b) / (a - b)
        recovered = (mixed[i, 0, 0, 0] - values[partner]) / (values[i] - values[partner])
        assert recovered == pytest.approx(weight, abs=1e-5)
        assert labels[i, partner] == pytest.approx(1 - weight, abs=1e-6)
    assert mixed_somewhere >= 4


@pytest.mark.parametrize("kind", MIXING_KINDS)
def test_pictures_and_labels_are_mixed_by_the_same_draw(kind):
    originals = random_pictures()
    classes = np.arange(BATCH, dtype="int32")
    mixing = mixing_augmentation(kind, num_classes=BATCH, alpha=1.0, seed=3)
    seen = set()
    for _ in range(3):
        mixed, labels = map(numpy, mixing(originals, classes))
        assert mixed.shape == originals.shape and labels.shape == (BATCH, BATCH)
        np.testing.assert_allclose(labels.sum(axis=1), 1.0, rtol=1e-6)
        assert labels.min() >= 0
        seen |= check_batch(kind, originals, classes, mixed, labels)
    expected = {"mixup", "cutmix"} if kind == "mixup_or_cutmix" else {kind}
    assert seen == expected


def test_cutmix_labels_count_the_pasted_pixels_exactly():
    """Keras' CutMix weighs labels by a real-valued box area; the pixels pasted differ."""
    originals = random_pictures(size=8)
    mixing = mixing_augmentation("cutmix", num_classes=BATCH, seed=5)
    for _ in range(4):
        mixed, labels = map(numpy, mixing(originals, np.arange(BATCH)))
        check_batch("cutmix", originals, np.arange(BATCH), mixed, labels)


def test_one_hot_and_integer_labels_give_the_same_mix():
    originals = random_pictures()
    classes = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    one_hot = np.eye(3, dtype="float32")[classes]
    results = []
    for labels, mode in (
        (classes, "int"),
        (classes[:, None], "int"),
        (classes.astype("uint8"), "int"),
        (one_hot, "categorical"),
    ):
        mixing = mixing_augmentation("mixup_or_cutmix", num_classes=3, label_mode=mode, seed=7)
        results.append(tuple(map(numpy, mixing(originals, labels))))
    for mixed, labels in results[1:]:
        np.testing.assert_array_equal(mixed, results[0][0])
        np.testing.assert_array_equal(labels, results[0][1])
    assert results[0][1].shape == (BATCH, 3)
    np.testing.assert_allclose(results[0][1].sum(axis=1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("shape", [(BATCH,), (BATCH, 1)])
def test_binary_labels_become_the_share_of_class_one(shape):
    originals = random_pictures()
    targets = (np.arange(BATCH) % 2).astype("float32").reshape(shape)
    mixing = mixing_augmentation("cutmix", label_mode="binary", seed=1)
    mixed, labels = map(numpy, mixing(originals, targets))
    assert labels.shape == shape and labels.dtype == np.float32
    # Each pixel comes from one picture: the label is the share of class-1 pixels.
    odd = originals[1::2]
    from_odd = np.any(np.all(mixed[:, None] == odd[None], axis=-1), axis=1)
    np.testing.assert_allclose(labels.reshape(-1), from_odd.mean(axis=(1, 2)), atol=1e-6)


def test_the_seed_reproduces_the_mix_and_uint8_pictures_are_accepted():
    originals = random_pictures().round().astype("uint8")
    first = mixing_augmentation("mixup", num_classes=BATCH, seed=11)
    second = mixing_augmentation("mixup", num_classes=BATCH, seed=11)
    a = numpy(first(originals, np.arange(BATCH))[0])
    b = numpy(second(originals, np.arange(BATCH))[0])
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32
    assert not np.array_equal(a, numpy(first(originals, np.arange(BATCH))[0]))


@pytest.mark.parametrize("kind", MIXING_KINDS)
def test_works_in_dataset_map(kind):
    originals = random_pictures(batch=11)
    classes = np.arange(11) % 5  # distinct within each batch of 4
    mixing = mixing_augmentation(kind, num_classes=5, alpha=0.8, seed=2)
    dataset = (
        tf.data.Dataset.from_tensor_slices((originals, classes))
        .batch(4)
        .map(mixing, num_parallel_calls=tf.data.AUTOTUNE)
    )
    assert dataset.element_spec[0].dtype == tf.float32
    assert dataset.element_spec[1].shape.as_list() == [None, 5]
    start, seen = 0, set()
    for _ in range(3):
        start = 0
        for mixed, labels in dataset:
            mixed, labels = mixed.numpy(), labels.numpy()
            end = start + len(mixed)
            np.testing.assert_allclose(labels.sum(axis=1), 1.0, rtol=1e-6)
            seen |= check_batch(
                kind, originals[start:end], classes[start:end], mixed, labels
            )
            start = end
        assert start == 11
    assert seen <= {"mixup", "cutmix"} and seen


def test_labels_out_of_range_are_refused():
    originals = random_pictures(batch=4)
    mixing = mixing_augmentation("mixup", num_classes=3, seed=0)
    with pytest.raises(ValueError, match=r"from 0 to 2.*\[3\]"):
        mixing(originals, np.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"\[-1\]"):
        mixing(originals, np.array([0, -1, 2, 1]))
    dataset = tf.data.Dataset.from_tensor_slices((originals, [0, 1, 2, 5])).batch(4)
    with pytest.raises(tf.errors.InvalidArgumentError, match="from 0 to 2"):
        list(dataset.map(mixing))


def test_labels_of_the_wrong_kind_get_a_hint():
    originals = random_pictures(batch=4)
    mixing = mixing_augmentation("cutmix", num_classes=3, seed=0)
    with pytest.raises(TypeError, match="label_mode='categorical'"):
        mixing(originals, np.array([0.0, 1.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match="label_mode='categorical'"):
        mixing(originals, np.eye(3, dtype="int32")[[0, 1, 2, 1]])
    categorical = mixing_augmentation("cutmix", num_classes=4, label_mode="categorical")
    with pytest.raises(ValueError, match=r"\(batch, 4\)"):
        categorical(originals, np.eye(3, dtype="float32")[[0, 1, 2, 1]])
    binary = mixing_augmentation("mixup", label_mode="binary")
    with pytest.raises(ValueError, match="label_mode='int' or 'categorical'"):
        binary(originals, np.eye(3, dtype="float32")[[0, 1, 2, 1]])
    with pytest.raises(ValueError, match=r"dataset.batch\(32\)"):
        mixing(originals[0], np.array(1))
    with pytest.raises(ValueError, match="4 pictures but 3 labels"):
        mixing(originals, np.array([0, 1, 2]))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="Did you mean 'mixup'"):
        mixing_augmentation("mix_up", num_classes=3)
    with pytest.raises(ValueError, match="Did you mean 'cutmix'"):
        mixing_augmentation("cut_mix", num_classes=3)
    with pytest.raises(TypeError, match="num_classes=10.*label_mode='binary'"):
        mixing_augmentation("mixup")
    with pytest.raises(ValueError, match="num_classes"):
        mixing_augmentation("mixup", num_classes=1)
    with pytest.raises(TypeError, match="num_classes"):
        mixing_augmentation("mixup", num_classes=2.0)
    with pytest.raises(ValueError, match="binary"):
        mixing_augmentation("mixup", num_classes=5, label_mode="binary")
    with pytest.raises(ValueError, match="Did you mean 'categorical'"):
        mixing_augmentation("mixup", num_classes=3, label_mode="catagorical")
    with pytest.raises(ValueError, match="alpha"):
        mixing_augmentation("mixup", num_classes=3, alpha=0)
    with pytest.raises(ValueError, match=r"alpha.*\(0, 1\]"):
        mixing_augmentation("cutmix", num_classes=3, alpha=2.0)
    with pytest.raises(ValueError, match="alpha"):
        mixing_augmentation("mixup_or_cutmix", num_classes=3, alpha=2.0)
    with pytest.raises(TypeError, match="seed"):
        mixing_augmentation("mixup", num_classes=3, seed=1.5)
    # MixUp takes any alpha > 0.
    assert mixing_augmentation("mixup", num_classes=3, alpha=2.0).alpha == {"mixup": 2.0}
    both = mixing_augmentation("mixup_or_cutmix", num_classes=3)
    assert both.alpha == {"mixup": 0.2, "cutmix": 1.0}
    assert [type(layer).__name__ for layer in both.layers] == ["MixUp", "CutMix"]
    assert "mixup_or_cutmix" in repr(both)


def test_a_keras_without_the_layers_gets_a_clear_error(monkeypatch):
    monkeypatch.delattr(keras.layers, "CutMix")
    with pytest.raises(ImportError, match=r"keras.layers.CutMix.*keras>=3.10"):
        mixing_augmentation("cutmix", num_classes=3)
