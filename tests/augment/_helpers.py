"""Pictures and reference helpers shared by the augmentation tests."""

import numpy as np


def smooth_picture(height=40, width=40, channels=3, seed=0):
    """A smooth float picture in [0, 255] (bilinear interpolation is then accurate)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype("float64")
    planes = []
    for _ in range(channels):
        fx, fy, phase = (
            rng.uniform(0.1, 0.35),
            rng.uniform(0.1, 0.35),
            rng.uniform(0, 6),
        )
        planes.append(127.5 + 120 * np.sin(fx * xx + phase) * np.cos(fy * yy))
    return np.stack(planes, -1).astype("float32")


def random_picture(height=40, width=40, channels=3, seed=0):
    """Random pixels in [0, 255] (float32)."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (height, width, channels)).astype("float32")


def inside_mask(matrix_row, height, width, margin=0.0):
    """Output pixels whose source point (by the affine rows) lies inside the input."""
    a0, a1, a2, b0, b1, b2 = (float(v) for v in np.asarray(matrix_row)[:6])
    yy, xx = np.mgrid[0:height, 0:width].astype("float64")
    sx = a0 * xx + a1 * yy + a2
    sy = b0 * xx + b1 * yy + b2
    return (
        (sx >= margin)
        & (sx <= width - 1 - margin)
        & (sy >= margin)
        & (sy <= height - 1 - margin)
    )


def legacy_warp(
    picture,
    rotation,
    shift_x,
    shift_y,
    shear,
    zoom_x,
    zoom_y,
    fill_mode="nearest",
    cval=0.0,
):
    """tf_keras.apply_affine_transform with OUR parameter conventions (square pictures).

    tf_keras's matrix works in (x = column, y = row) coordinates and maps output
    to input, so its ``tx`` moves columns and ``ty`` rows, with the opposite sign
    to our "positive shift moves the picture right/down".
    """
    from tf_keras.preprocessing.image import apply_affine_transform

    return apply_affine_transform(
        picture,
        theta=rotation,
        tx=-shift_x,
        ty=-shift_y,
        shear=shear,
        zx=zoom_x,
        zy=zoom_y,
        row_axis=0,
        col_axis=1,
        channel_axis=2,
        fill_mode=fill_mode,
        cval=cval,
        order=1,
    )
