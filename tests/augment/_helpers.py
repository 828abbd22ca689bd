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


class NumpyOps:
    """`keras.ops` spellings over NumPy: runs the library's pure functions without a backend.

    The warp and the parameter functions are written once against `keras.ops`
    names; through this shim the same Python code runs in NumPy float32, in
    microseconds and with nothing to compile, which lets hypothesis try many
    shapes and values.
    """

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def cast(x, dtype):
        return np.asarray(x).astype(dtype)

    @staticmethod
    def shape(x):
        return np.shape(x)


NUMPY_OPS = NumpyOps()


def _extended_index(index, size, fill_mode):
    """Index into a picture extended beyond its edges, or -1 for "fill"."""
    if fill_mode == "nearest":
        return np.clip(index, 0, size - 1)
    if fill_mode == "wrap":
        return np.mod(index, size)
    if fill_mode == "reflect":  # half-sample symmetric: dcba|abcd|dcba
        folded = np.mod(index, 2 * size)
        return np.where(folded >= size, 2 * size - 1 - folded, folded)
    return np.where((index >= 0) & (index < size), index, -1)  # constant


def reference_warp(
    picture, matrix_row, fill_mode="nearest", fill_value=0.0, interpolation="bilinear"
):
    """An exact float64 warp of one picture, written from the definitions.

    The picture is extended beyond its edges by ``fill_mode`` (index by
    index: "nearest" repeats the edge, "reflect" mirrors about the edge,
    "wrap" tiles, "constant" is ``fill_value``) and sampled at the source
    position ``(a0 x + a1 y + a2, b0 x + b1 y + b2)`` of every output pixel,
    bilinearly or at the nearest pixel (halves rounded up).
    """
    picture = np.asarray(picture, "float64")
    height, width = picture.shape[:2]
    a0, a1, a2, b0, b1, b2 = (float(v) for v in np.asarray(matrix_row)[:6])
    yy, xx = np.mgrid[0:height, 0:width].astype("float64")
    # Whole and fractional parts of the offsets, kept apart: a float64 position
    # like 1e16 + 0.5 would lose its fraction, an int64 pixel index does not.
    whole_x, whole_y = np.floor(a2), np.floor(b2)
    sx = a0 * xx + a1 * yy + (a2 - whole_x)
    sy = b0 * xx + b1 * yy + (b2 - whole_y)
    whole_x, whole_y = np.int64(whole_x), np.int64(whole_y)

    def sample(rows, columns):
        rows = _extended_index(rows, height, fill_mode)
        columns = _extended_index(columns, width, fill_mode)
        inside = (rows >= 0) & (columns >= 0)
        values = picture[np.maximum(rows, 0), np.maximum(columns, 0)]
        return np.where(inside[..., None], values, fill_value)

    if interpolation == "nearest":
        rows = np.floor(sy + 0.5).astype("int64") + whole_y
        return sample(rows, np.floor(sx + 0.5).astype("int64") + whole_x)
    x0, y0 = np.floor(sx), np.floor(sy)
    fx, fy = (sx - x0)[..., None], (sy - y0)[..., None]
    x0, y0 = x0.astype("int64") + whole_x, y0.astype("int64") + whole_y
    top = (1 - fx) * sample(y0, x0) + fx * sample(y0, x0 + 1)
    bottom = (1 - fx) * sample(y0 + 1, x0) + fx * sample(y0 + 1, x0 + 1)
    return (1 - fy) * top + fy * bottom
