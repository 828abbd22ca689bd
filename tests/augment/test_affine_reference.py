"""RandomAffine / affine_matrix against tf_keras's apply_affine_transform, pixel for pixel.

Mapping (worked out in keras_smalldata/augment/affine.py and docs/augmentation.md):
tf_keras builds its matrix in (x = column, y = row) coordinates, output -> input,
so on a square picture our (rotation, shift_x, shift_y, shear, zoom_x, zoom_y) is
its (theta, tx=-shift_x, ty=-shift_y, shear, zx, zy).
"""

import keras
import numpy as np
import pytest

from keras_smalldata.augment import RandomAffine, affine_matrix
from keras_smalldata.augment._warp import warp
from tests.augment._helpers import (
    inside_mask,
    legacy_warp,
    random_picture,
    smooth_picture,
)

SIZE = 40
# Interpolation tolerance: both sample the same points bilinearly (float32 vs float64).
ATOL = 0.02
PARAMETERS = ("rotation", "shift_x", "shift_y", "shear", "zoom_x", "zoom_y")

CASES = [
    # rotation, shift_x, shift_y, shear, zoom_x, zoom_y
    (17.0, 0.0, 0.0, 0.0, 1.0, 1.0),
    (-33.0, 0.0, 0.0, 0.0, 1.0, 1.0),
    (0.0, 5.5, 0.0, 0.0, 1.0, 1.0),
    (0.0, 0.0, -7.25, 0.0, 1.0, 1.0),
    (0.0, 0.0, 0.0, 12.0, 1.0, 1.0),
    (0.0, 0.0, 0.0, 0.0, 1.15, 0.8),
    (25.0, 4.0, -3.0, 8.0, 0.9, 1.2),
    (-40.0, -6.0, 6.0, -20.0, 1.2, 0.85),
]


def _warp(picture, matrix, fill_mode="nearest", fill_value=0.0):
    """The layer's own resampling pass, on one picture."""
    matrix = keras.ops.convert_to_tensor(np.asarray(matrix, "float32").reshape(-1, 8))
    out = warp(keras.ops, picture[None], matrix, fill_mode=fill_mode, fill_value=fill_value)
    return keras.ops.convert_to_numpy(out)[0]


@pytest.mark.parametrize("params", CASES)
def test_affine_matrix_matches_apply_affine_transform(params):
    picture = random_picture(SIZE, SIZE, seed=1)
    matrix = keras.ops.convert_to_numpy(affine_matrix(SIZE, SIZE, **dict(zip(PARAMETERS, params))))
    ours = _warp(picture, matrix)
    reference = legacy_warp(picture, *params)
    mask = inside_mask(matrix[0], SIZE, SIZE)
    assert mask.sum() > 0.4 * SIZE * SIZE
    np.testing.assert_allclose(ours[mask], reference[mask], atol=ATOL)


@pytest.mark.parametrize("fill_mode", ["constant", "reflect"])
def test_fill_modes_match_inside_and_constant_outside(fill_mode):
    picture = smooth_picture(SIZE, SIZE, seed=2)
    params = (30.0, 3.0, -2.0, 5.0, 1.3, 1.1)
    matrix = keras.ops.convert_to_numpy(affine_matrix(SIZE, SIZE, **dict(zip(PARAMETERS, params))))
    ours = _warp(picture, matrix, fill_mode=fill_mode, fill_value=-7.0)
    reference = legacy_warp(picture, *params, fill_mode=fill_mode, cval=-7.0)
    mask = inside_mask(matrix[0], SIZE, SIZE)
    np.testing.assert_allclose(ours[mask], reference[mask], atol=ATOL)
    if fill_mode == "constant":
        far_outside = ~inside_mask(matrix[0], SIZE, SIZE, margin=-1.0)
        assert far_outside.sum() > 50
        np.testing.assert_array_equal(ours[far_outside], -7.0)


def test_layer_draws_reproduce_reference_with_their_own_parameters():
    """Draw -> matrix -> warp (flips included) of the layer equals the reference."""
    layer = RandomAffine(
        rotation_range=40,
        width_shift_range=0.2,
        height_shift_range=0.2,
        shear_range=15,
        zoom_range=0.2,
        horizontal_flip=True,
        vertical_flip=True,
        seed=7,
    )
    pictures = np.stack([random_picture(SIZE, SIZE, seed=s) for s in range(6)])
    transformation = layer.get_random_transformation(pictures, training=True)
    out = keras.ops.convert_to_numpy(layer.transform_images(pictures, transformation))
    params = {k: keras.ops.convert_to_numpy(v) for k, v in transformation.items()}
    # The seed gives both flipped and unflipped pictures, so both paths are checked.
    assert 0 < params["horizontal_flip"].sum() < len(pictures)
    assert 0 < params["vertical_flip"].sum() < len(pictures)
    for i in range(len(pictures)):
        reference = legacy_warp(
            pictures[i],
            params["rotation"][i],
            params["shift_x"][i],
            params["shift_y"][i],
            params["shear"][i],
            params["zoom_x"][i],
            params["zoom_y"][i],
        )
        matrix = affine_matrix(SIZE, SIZE, **{name: params[name][i] for name in PARAMETERS})
        mask = inside_mask(keras.ops.convert_to_numpy(matrix)[0], SIZE, SIZE)
        # The flips happen after the warp, on the output grid.
        if params["horizontal_flip"][i]:
            reference, mask = reference[:, ::-1], mask[:, ::-1]
        if params["vertical_flip"][i]:
            reference, mask = reference[::-1], mask[::-1]
        np.testing.assert_allclose(out[i][mask], reference[mask], atol=ATOL)


def test_call_uses_the_drawn_transformation():
    pictures = np.stack([random_picture(SIZE, SIZE, seed=s) for s in range(4)])
    kwargs = dict(rotation_range=30, zoom_range=0.3, horizontal_flip=True, seed=3)
    called = keras.ops.convert_to_numpy(RandomAffine(**kwargs)(pictures, training=True))
    twin = RandomAffine(**kwargs)
    manual = twin.transform_images(pictures, twin.get_random_transformation(pictures))
    # Compiled (call) and op-by-op (manual) float32 arithmetic differ in the last bits.
    np.testing.assert_allclose(called, keras.ops.convert_to_numpy(manual), atol=0.01)


def _dot_picture(height, width, row, col):
    picture = np.zeros((height, width, 1), "float32")
    picture[row, col] = 1.0
    return picture


def _position(picture):
    row, col, _ = np.unravel_index(np.argmax(picture), picture.shape)
    return int(row), int(col)


def test_conventions_rotation_is_counter_clockwise():
    # A dot right of the centre of a 21x21 picture goes above the centre.
    picture = _dot_picture(21, 21, 10, 16)
    out = _warp(picture, affine_matrix(21, 21, rotation=90.0), fill_mode="constant")
    assert _position(out) == (4, 10)


def test_conventions_positive_shifts_move_right_and_down():
    picture = _dot_picture(20, 30, 5, 5)
    out = _warp(picture, affine_matrix(20, 30, shift_x=4.0), fill_mode="constant")
    assert _position(out) == (5, 9)
    out = _warp(picture, affine_matrix(20, 30, shift_y=3.0), fill_mode="constant")
    assert _position(out) == (8, 5)


def test_conventions_zoom_above_one_zooms_out():
    picture = _dot_picture(21, 21, 10, 18)  # 8 px right of the centre
    out = _warp(
        picture, affine_matrix(21, 21, zoom_x=2.0, zoom_y=2.0), fill_mode="constant"
    )
    assert _position(out) == (10, 14)  # 4 px right of the centre: smaller


def test_width_shift_moves_columns_on_non_square_pictures():
    """The documented behaviour, not the tf_keras axis swap."""
    picture = random_picture(24, 36, seed=4)
    layer = RandomAffine(width_shift_range=[5], fill_mode="constant", seed=0)
    out = keras.ops.convert_to_numpy(layer(np.stack([picture] * 8), training=True))
    signs = set()
    for image in out:
        if np.allclose(image[:, 5:], picture[:, :-5]):
            signs.add(+1)
        else:
            np.testing.assert_allclose(image[:, :-5], picture[:, 5:])
            signs.add(-1)
    assert signs == {-1, 1}
    layer = RandomAffine(height_shift_range=[0.25], fill_mode="constant", seed=0)
    out = keras.ops.convert_to_numpy(layer(picture, training=True))
    assert np.allclose(out[6:], picture[:-6]) or np.allclose(out[:-6], picture[6:])


def test_tf_keras_image_data_generator_swaps_the_shift_axes():
    """The upstream defect the docs describe (and that RandomAffine does not copy)."""
    from tf_keras.preprocessing.image import ImageDataGenerator

    picture = random_picture(24, 36, seed=5)
    generator = ImageDataGenerator(height_shift_range=[4], fill_mode="constant")
    out = generator.random_transform(picture, seed=0)
    moved_sideways = np.allclose(out[:, 4:], picture[:, :-4]) or np.allclose(
        out[:, :-4], picture[:, 4:]
    )
    assert moved_sideways  # a HEIGHT shift that moved COLUMNS


def test_centre_is_the_picture_centre_on_non_square_pictures():
    picture = random_picture(24, 36, seed=6)
    out = _warp(picture, affine_matrix(24, 36, rotation=180.0))
    np.testing.assert_allclose(out, picture[::-1, ::-1], atol=0.01)
    flipped = _warp(
        picture, affine_matrix(24, 36, horizontal_flip=True, vertical_flip=True)
    )
    np.testing.assert_allclose(flipped, picture[::-1, ::-1], atol=1e-3)


def test_affine_matrix_broadcasts_and_validates():
    matrix = affine_matrix(10, 12, rotation=[0.0, 10.0, 20.0], zoom_x=1.1)
    assert tuple(matrix.shape) == (3, 8)
    identity = keras.ops.convert_to_numpy(affine_matrix(10, 12))
    np.testing.assert_allclose(identity, [[1, 0, 0, 0, 1, 0, 0, 0]], atol=1e-6)
    with pytest.raises(ValueError, match="height"):
        affine_matrix(0, 12)
    with pytest.raises(ValueError, match="rotation"):
        affine_matrix(10, 12, rotation=np.zeros((2, 2)))
