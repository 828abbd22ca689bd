"""The resampling pass against an exact float64 warp: fill modes, odd sizes, extreme settings."""

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_smalldata import _backend
from keras_smalldata.augment import RandomAffine, affine_matrix
from keras_smalldata.augment._warp import warp
from tests.augment._helpers import NUMPY_OPS, random_picture, reference_warp

FILL_MODES = ("nearest", "constant", "reflect", "wrap")


PARAMETERS = ("rotation", "shift_x", "shift_y", "shear", "zoom_x", "zoom_y")


def _matrix(height, width, *params):
    options = dict(zip(PARAMETERS, params))
    return keras.ops.convert_to_numpy(affine_matrix(height, width, **options))


def _backend_warp(pictures, matrix, **kwargs):
    """The pass on the backend's tensors, compiled as the layer compiles it."""
    function = _backend.xla_function(lambda x, m: warp(keras.ops, x, m, **kwargs))
    tensors = [keras.ops.convert_to_tensor(a, "float32") for a in (pictures, matrix)]
    return keras.ops.convert_to_numpy(function(*tensors))


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("fill_mode", FILL_MODES)
def test_backend_pass_matches_the_float64_warp(fill_mode, interpolation):
    picture = random_picture(13, 17, seed=1)
    cases = [
        (30.0, 3.0, -2.0, 5.0, 1.3, 1.1),
        (-140.0, -25.25, 40.0, 20.0, 0.7, 1.9),
        (0.0, 41.3, -35.6, 0.0, 1.0, 1.0),  # beyond two periods of "wrap"
    ]
    for params in cases:
        matrix = _matrix(13, 17, *params)
        out = _backend_warp(
            picture[None], matrix, interpolation=interpolation,
            fill_mode=fill_mode, fill_value=-7.0,
        )[0]  # fmt: skip
        expected = reference_warp(picture, matrix[0], fill_mode, -7.0, interpolation)
        np.testing.assert_allclose(out, expected, atol=0.01)


@settings(max_examples=120, deadline=None)
@given(
    height=st.integers(1, 9),
    width=st.integers(1, 9),
    channels=st.integers(1, 4),
    rotation=st.floats(-360, 360),
    shift_x=st.floats(-1e18, 1e18) | st.floats(-50, 50),
    shift_y=st.floats(-1e18, 1e18) | st.floats(-50, 50),
    shear=st.floats(-89, 89),
    zoom_x=st.floats(1e-3, 1e3),
    zoom_y=st.floats(1e-3, 1e3),
    fill_mode=st.sampled_from(FILL_MODES),
    fill_value=st.floats(-1e4, 1e4),
    seed=st.integers(0, 100),
)
def test_any_finite_warp_matches_the_float64_warp(
    height, width, channels, rotation, shift_x, shift_y, shear, zoom_x, zoom_y,
    fill_mode, fill_value, seed,
):  # fmt: skip
    picture = random_picture(height, width, channels, seed=seed)
    params = (rotation, shift_x, shift_y, shear, zoom_x, zoom_y)
    matrix = _matrix(height, width, *params)
    out = warp(NUMPY_OPS, picture[None], matrix, fill_mode=fill_mode, fill_value=fill_value)
    expected = reference_warp(picture, matrix[0], fill_mode, fill_value)
    assert out.dtype == np.float32 and out.shape == (1, height, width, channels)
    # The pass computes positions in float32, after reducing huge offsets: a
    # few float32 steps of the largest position it handles, times the largest
    # step between neighbouring values.
    reach = (np.abs(matrix[0, [0, 1, 3, 4]]).sum() + 4.0) * max(height, width)
    span = 255.0 + abs(fill_value)
    atol = 8 * np.finfo("float32").eps * reach * span + 1e-5 * span
    np.testing.assert_allclose(out[0], expected, atol=atol)


@settings(max_examples=60, deadline=None)
@given(
    height=st.integers(1, 7),
    width=st.integers(1, 7),
    shift=st.floats(-1e18, 1e18),
    fill_mode=st.sampled_from(FILL_MODES),
)
def test_nearest_interpolation_only_copies_pixels_or_the_fill(
    height, width, shift, fill_mode
):
    picture = random_picture(height, width, 2, seed=3)
    matrix = _matrix(height, width, 25.0, shift, -shift / 3, 0.0, 1.3, 0.8)
    out = warp(
        NUMPY_OPS, picture[None], matrix, interpolation="nearest",
        fill_mode=fill_mode, fill_value=-1.0,
    )[0]  # fmt: skip
    allowed = {tuple(p) for p in picture.reshape(-1, 2)} | {(-1.0, -1.0)}
    assert {tuple(p) for p in out.reshape(-1, 2)} <= allowed


@pytest.mark.parametrize("shift", [1e8, -1e8])
def test_layer_with_a_huge_shift_and_constant_fill_gives_the_fill(shift):
    """Issue 14, item 9: TensorFlow's kernel returned zeros here, not the fill value."""
    pictures = np.full((2, 16, 16, 3), 100, "uint8")
    layer = RandomAffine(width_shift_range=[shift], fill_mode="constant", fill_value=7.0)
    out = keras.ops.convert_to_numpy(layer(pictures, training=True))
    np.testing.assert_array_equal(out, 7.0)


def test_layer_with_a_huge_shift_and_nearest_fill_repeats_an_edge_column():
    picture = random_picture(10, 12, seed=4)
    layer = RandomAffine(width_shift_range=[1e8], fill_mode="nearest", seed=0)
    out = keras.ops.convert_to_numpy(layer(np.stack([picture] * 8), training=True))
    sides = set()
    for image in out:
        side = 0 if np.allclose(image, picture[:, :1]) else -1
        np.testing.assert_allclose(image, np.repeat(picture[:, side:][:, :1], 12, 1))
        sides.add(side)
    assert sides == {0, -1}


def test_wrap_tiles_the_picture_at_every_period():
    """TensorFlow's kernel mixed periods and returned zeros from two periods on."""
    picture = random_picture(6, 8, seed=5)
    for periods in (0.5, 2, 3, -5):
        shift = int(periods * 8)
        matrix = _matrix(6, 8, 0.0, float(shift))
        out = _backend_warp(picture[None], matrix, fill_mode="wrap")[0]
        np.testing.assert_allclose(out, np.roll(picture, shift, axis=1), atol=1e-4)


def test_far_outside_constant_fill_is_exact_on_every_backend():
    picture = random_picture(20, 20, seed=6)
    matrix = _matrix(20, 20, 30.0, 3.0, -2.0, 5.0, 1.3, 1.1)
    out = _backend_warp(picture[None], matrix, fill_mode="constant", fill_value=-7.0)[0]
    expected = reference_warp(picture, matrix[0], "constant", -7.0)
    far = np.all(expected == -7.0, axis=-1)  # every neighbour outside
    assert far.sum() > 20
    np.testing.assert_array_equal(out[far], -7.0)


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        (dict(width_shift_range=1e19), "width_shift_range"),
        (dict(height_shift_range=[0.5, -2e18]), "height_shift_range"),
        (dict(zoom_range=(1e-20, 1.0)), "zoom_range"),
        (dict(zoom_range=(1.0, 1e19)), "zoom_range"),
        (dict(fill_value=1e39), "fill_value"),
    ],
)
def test_settings_beyond_float32_are_refused(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        RandomAffine(**kwargs)


def test_affine_matrix_takes_its_parameters_by_keyword():
    with pytest.raises(TypeError):
        affine_matrix(8, 8, 10.0)
    np.testing.assert_allclose(_matrix(8, 8, 10.0), _matrix(8, 8, 10.0, 0.0))
