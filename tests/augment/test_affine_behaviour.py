"""RandomAffine: ranges of the draws, per-image randomness, inference, seeds, dtypes."""

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_smalldata.augment import RandomAffine
from tests.augment._helpers import random_picture

N_DRAWS = 20000


def _draws(layer, height=8, width=10, n=N_DRAWS):
    images = np.zeros((n, height, width, 1), "float32")
    transformation = layer.get_random_transformation(images, training=True)
    return {
        k: keras.ops.convert_to_numpy(v)
        for k, v in transformation.items()
        if k != "matrix"
    }


def _check_uniform(values, low, high):
    assert values.min() >= low - 1e-4 and values.max() <= high + 1e-4
    # Fills the interval: the extremes of 20000 uniform draws are near the bounds.
    span = high - low
    assert values.min() < low + 0.01 * span and values.max() > high - 0.01 * span
    mean_sd = span / np.sqrt(12 * len(values))
    assert abs(values.mean() - (low + high) / 2) < 5 * mean_sd
    assert abs(values.std() - span / np.sqrt(12)) < 0.03 * span / np.sqrt(12)


def test_uniform_ranges_of_the_draws():
    layer = RandomAffine(
        rotation_range=40,
        width_shift_range=0.2,
        height_shift_range=3.5,
        shear_range=0.2,
        zoom_range=(0.7, 1.1),
        seed=0,
    )
    draws = _draws(layer, height=8, width=10)
    _check_uniform(draws["rotation"], -40, 40)
    _check_uniform(draws["shift_x"], -0.2 * 10, 0.2 * 10)  # fraction of the width
    _check_uniform(draws["shift_y"], -3.5, 3.5)  # float >= 1: pixels
    _check_uniform(draws["shear"], -0.2, 0.2)  # degrees
    _check_uniform(draws["zoom_x"], 0.7, 1.1)
    _check_uniform(draws["zoom_y"], 0.7, 1.1)
    # x and y zooms are independent draws.
    assert abs(np.corrcoef(draws["zoom_x"], draws["zoom_y"])[0, 1]) < 0.05
    np.testing.assert_array_equal(draws["horizontal_flip"], 0.0)
    np.testing.assert_array_equal(draws["vertical_flip"], 0.0)


def test_float_zoom_range_means_one_plus_minus():
    draws = _draws(RandomAffine(zoom_range=0.2, seed=1))
    _check_uniform(draws["zoom_x"], 0.8, 1.2)


def test_flips_have_probability_one_half():
    draws = _draws(RandomAffine(horizontal_flip=True, vertical_flip=True, seed=2))
    for key in ("horizontal_flip", "vertical_flip"):
        assert set(np.unique(draws[key])) == {0.0, 1.0}
        assert abs(draws[key].mean() - 0.5) < 0.02
    assert (
        abs(np.corrcoef(draws["horizontal_flip"], draws["vertical_flip"])[0, 1]) < 0.05
    )


@pytest.mark.parametrize(
    "shift_range, expected",
    [
        (3, {-2, -1, 0, 1, 2}),  # int n: range(n) with a random sign
        (1, {0}),  # range(1) is {0}: no shift, as in ImageDataGenerator
        ([2, 5], {-5, -2, 2, 5}),  # list: one element with a random sign
        ([0.25, 0.5], {-5, -2.5, 2.5, 5}),  # all < 1: fractions of the width (10)
        ([-0.5, 4], {-4, -0.5, 0.5, 4}),  # max >= 1: pixels
    ],
)
def test_shift_choice_forms(shift_range, expected):
    draws = _draws(RandomAffine(width_shift_range=shift_range, seed=3), n=4000)
    assert set(np.round(draws["shift_x"], 4).tolist()) == expected
    if len(expected) > 1:
        counts = np.unique(draws["shift_x"], return_counts=True)[1]
        assert counts.min() > 0.5 * counts.mean()  # roughly equally likely


def test_shift_forms_match_image_data_generator_draws():
    """Same value sets / bounds as tf_keras's own get_random_transform."""
    from tf_keras.preprocessing.image import ImageDataGenerator

    for shift_range in (3, [2, 5], [0.25, 0.5], 0.3, 4.0):
        legacy = ImageDataGenerator(width_shift_range=shift_range)
        np.random.seed(0)
        # tf_keras names the width shift "ty" (it is the pixel count along columns).
        legacy_values = np.array(
            [legacy.get_random_transform((8, 10, 1))["ty"] for _ in range(2000)]
        )
        ours = _draws(RandomAffine(width_shift_range=shift_range, seed=4), n=2000)
        ours = ours["shift_x"]
        if isinstance(shift_range, float):
            bound = shift_range * 10 if shift_range < 1 else shift_range
            assert np.abs(legacy_values).max() <= bound
            assert np.abs(ours).max() <= bound + 1e-4
            assert np.abs(ours).max() > 0.98 * bound
        else:
            assert set(np.round(ours, 4)) == set(np.round(legacy_values, 4))


@settings(max_examples=20, deadline=None)
@given(
    rotation=st.floats(0.5, 180),
    shift=st.floats(0, 0.99),
    shear=st.floats(0, 60),
    zoom=st.floats(0, 0.9),
)
def test_draws_stay_in_their_ranges(rotation, shift, shear, zoom):
    layer = RandomAffine(
        rotation_range=rotation,
        width_shift_range=shift,
        height_shift_range=shift,
        shear_range=shear,
        zoom_range=zoom,
        seed=5,
    )
    draws = _draws(layer, height=12, width=20, n=256)
    tol = 1e-3
    assert np.abs(draws["rotation"]).max() <= rotation + tol
    assert np.abs(draws["shift_x"]).max() <= shift * 20 + tol
    assert np.abs(draws["shift_y"]).max() <= shift * 12 + tol
    assert np.abs(draws["shear"]).max() <= shear + tol
    for key in ("zoom_x", "zoom_y"):
        assert draws[key].min() >= 1 - zoom - tol and draws[key].max() <= 1 + zoom + tol


def test_each_picture_of_a_batch_gets_its_own_draw():
    picture = random_picture(24, 24, seed=0)
    layer = RandomAffine(rotation_range=30, zoom_range=0.2, seed=0)
    out = keras.ops.convert_to_numpy(layer(np.stack([picture] * 8), training=True))
    flat = out.reshape(8, -1)
    distances = [np.abs(flat[i] - flat[j]).mean() for i in range(8) for j in range(i)]
    assert min(distances) > 1.0


def test_identity_at_inference_and_for_a_layer_with_nothing_to_do():
    pictures = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype="uint8")
    layer = RandomAffine(rotation_range=40, zoom_range=0.2, horizontal_flip=True)
    out = layer(pictures, training=False)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(out), pictures.astype("float32")
    )
    out = RandomAffine()(pictures, training=True)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(out), pictures.astype("float32")
    )


def test_seed_reproducibility():
    pictures = np.stack([random_picture(20, 20, seed=s) for s in range(4)])
    kwargs = dict(
        rotation_range=40, width_shift_range=0.2, zoom_range=0.2, horizontal_flip=True
    )
    first, second, other = (
        RandomAffine(**kwargs, seed=11),
        RandomAffine(**kwargs, seed=11),
        RandomAffine(**kwargs, seed=12),
    )
    for _ in range(2):  # the sequence of draws repeats, not just the first one
        a = keras.ops.convert_to_numpy(first(pictures, training=True))
        b = keras.ops.convert_to_numpy(second(pictures, training=True))
        c = keras.ops.convert_to_numpy(other(pictures, training=True))
        np.testing.assert_array_equal(a, b)
        assert np.abs(a - c).mean() > 1.0
    # Successive calls of one layer differ.
    assert (
        np.abs(a - keras.ops.convert_to_numpy(first(pictures, training=True))).mean()
        > 1.0
    )


@pytest.mark.parametrize(
    "dtype, low, high",
    [
        ("uint8", 0, 255),
        ("float32", 0.0, 1.0),
        ("float32", -1.0, 1.0),
        ("float64", 0.0, 255.0),
    ],
)
def test_value_range_is_preserved(dtype, low, high):
    rng = np.random.default_rng(0)
    pictures = rng.uniform(low, high, (4, 24, 24, 3))
    pictures = np.round(pictures) if dtype == "uint8" else pictures
    pictures = pictures.astype(dtype)
    layer = RandomAffine(
        rotation_range=45, shear_range=20, zoom_range=0.3, fill_mode="reflect", seed=0
    )
    out = layer(pictures, training=True)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    out = keras.ops.convert_to_numpy(out)
    assert out.min() >= pictures.min() - 1e-4 and out.max() <= pictures.max() + 1e-4
    assert np.abs(out - pictures.astype("float32")).mean() > 0.01 * (high - low)


def test_constant_fill_uses_fill_value():
    pictures = np.full((2, 20, 20, 1), 100, "uint8")
    layer = RandomAffine(
        width_shift_range=[8], fill_mode="constant", fill_value=-1.0, seed=0
    )
    out = keras.ops.convert_to_numpy(layer(pictures, training=True))
    assert set(np.unique(out)) == {-1.0, 100.0}
    assert (out == -1.0).sum() == 2 * 20 * 8


def test_unbatched_input():
    picture = random_picture(20, 30, seed=0)
    layer = RandomAffine(rotation_range=10, seed=0)
    out = layer(picture, training=True)
    assert tuple(out.shape) == (20, 30, 3)
    assert layer.compute_output_shape((20, 30, 3)) == (20, 30, 3)


def test_channels_first_matches_channels_last():
    pictures = np.stack([random_picture(16, 24, seed=s) for s in range(3)])
    kwargs = dict(rotation_range=30, width_shift_range=0.1, zoom_range=0.2, seed=9)
    last = RandomAffine(**kwargs, data_format="channels_last")(pictures, training=True)
    first = RandomAffine(**kwargs, data_format="channels_first")(
        np.transpose(pictures, (0, 3, 1, 2)), training=True
    )
    np.testing.assert_allclose(
        np.transpose(keras.ops.convert_to_numpy(first), (0, 2, 3, 1)),
        keras.ops.convert_to_numpy(last),
        atol=1e-4,
    )


def test_segmentation_masks_follow_the_pictures_with_nearest_interpolation():
    pictures = np.stack([random_picture(16, 16, seed=s) for s in range(2)])
    masks = (pictures[..., :1] > 128).astype("float32")
    layer = RandomAffine(rotation_range=30, horizontal_flip=True, seed=0)
    out = layer(
        {"images": pictures, "segmentation_masks": masks, "labels": np.array([0, 1])},
        training=True,
    )
    assert set(np.unique(keras.ops.convert_to_numpy(out["segmentation_masks"]))) <= {
        0.0,
        1.0,
    }
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(out["labels"]), [0, 1])


@pytest.mark.parametrize(
    "kwargs, error, argument",
    [
        (dict(rotation_range=-5), ValueError, "rotation_range"),
        (dict(rotation_range="40"), TypeError, "rotation_range"),
        (dict(rotation_range=400), ValueError, "rotation_range"),
        (dict(width_shift_range=-0.2), ValueError, "width_shift_range"),
        (dict(height_shift_range=-3), ValueError, "height_shift_range"),
        (dict(height_shift_range=[]), ValueError, "height_shift_range"),
        (dict(width_shift_range="0.2"), TypeError, "width_shift_range"),
        (dict(shear_range=-1), ValueError, "shear_range"),
        (dict(shear_range=90), ValueError, "shear_range"),
        (dict(zoom_range=1.0), ValueError, "zoom_range"),
        (dict(zoom_range=-0.2), ValueError, "zoom_range"),
        (dict(zoom_range=(0.0, 1.2)), ValueError, "zoom_range"),
        (dict(zoom_range=(1.2, 0.8)), ValueError, "zoom_range"),
        (dict(zoom_range=(0.8, 1.0, 1.2)), TypeError, "zoom_range"),
        (dict(horizontal_flip="yes"), TypeError, "horizontal_flip"),
        (dict(fill_mode="mirror"), ValueError, "fill_mode"),
        (dict(interpolation="bicubic"), ValueError, "interpolation"),
        (dict(fill_value=None), TypeError, "fill_value"),
        (dict(seed=-1), ValueError, "seed"),
        (dict(seed=1.5), TypeError, "seed"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, error, argument):
    with pytest.raises(error, match=argument):
        RandomAffine(**kwargs)


def test_unknown_fill_mode_suggests_the_closest():
    with pytest.raises(ValueError, match="Did you mean 'nearest'"):
        RandomAffine(fill_mode="nearst")


@pytest.mark.skipif(
    keras.backend.backend() == "torch", reason="PyTorch runs eagerly: nothing is compiled"
)
def test_eager_calls_reuse_the_compiled_augmentation(monkeypatch):
    # A fill value of its own: compiled functions are shared by similar layers.
    layer = RandomAffine(rotation_range=20, fill_value=0.0625, seed=0)
    traces = []
    original = layer._augment
    monkeypatch.setattr(
        layer, "_augment", lambda *a: traces.append(a[1].shape) or original(*a)
    )
    sizes = (2, 3, 4)
    for _ in range(2):
        for batch_size in sizes:
            layer(np.zeros((batch_size, 12, 12, 3), "float32"), training=True)
    if keras.backend.backend() == "tensorflow":
        # reduce_retracing: one trace serves every batch size.
        assert len(traces) <= 2
    else:
        # jax.jit: one trace per shape, never one per call.
        assert len(traces) == len(sizes)
    # A layer with other ranges reuses the compiled function.
    twin = RandomAffine(zoom_range=0.2, fill_value=0.0625, seed=1)
    count = len(traces)
    twin(np.zeros((3, 12, 12, 3), "float32"), training=True)
    assert len(traces) == count
