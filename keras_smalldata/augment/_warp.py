"""One resampling pass of pictures by affine matrices, written to NumPy-like ops.

`warp` is the geometric core of `RandomAffine`. It runs unchanged with
`keras.ops` (TensorFlow, JAX and PyTorch tensors) and with its TensorFlow twin
inside ``tf.data`` under the other backends (`_tf_data.keras_ops_for`), and
it is compiled with XLA where the backend has it (`_tf_data.xla_function`).

It samples what `keras.ops.image.affine_transform` samples (the same
output-to-input matrix rows, the same bilinear rule), with these differences,
all on purpose:

- the source coordinates of a picture are computed once per pixel, not once
  per channel, and each neighbour is gathered with all its channels at once
  (that, and XLA fusing the whole pass, is where the speed comes from);
- ``fill_mode="constant"`` gives exactly ``fill_value`` where every neighbour
  is outside the picture (the backends' kernels give zeros for shifts beyond
  about 2**24 pixels on TensorFlow, or ``fill_value`` plus rounding on JAX);
- ``fill_mode="wrap"`` tiles the picture with period ``size``, as documented
  (``abcd|abcd|abcd``); TensorFlow's kernel mixes periods ``size`` and
  ``size - 1`` and returns zeros from two periods on;
- a huge translation is reduced to an equivalent small one before the pass
  (modulo the period for "reflect" and "wrap", clipped beyond the picture for
  "nearest" and "constant"), so that float32 coordinates keep sub-pixel
  precision;
- ``interpolation="nearest"`` rounds a position exactly halfway between two
  pixels up (the kernels round away from zero), so that the rule is the same
  on every period of "reflect" and "wrap".
"""

from __future__ import annotations


def _reflect(xnp, coordinate, size):
    """Half-sample symmetric reflection (``dcba|abcd|dcba``) into ``[0, size - 1]``."""
    period = 2.0 * size
    folded = xnp.mod(coordinate + 0.5, period)
    folded = xnp.where(folded > size, period - folded, folded)
    return folded - 0.5


def _reduce_offsets(xnp, matrix, height, width, fill_mode):
    """Returns the matrix with its translation column reduced to an equivalent small one."""
    a0, a1, off_x, b0, b1, off_y = (matrix[:, i] for i in range(6))
    if fill_mode in ("reflect", "wrap"):
        factor = 2.0 if fill_mode == "reflect" else 1.0
        off_x = xnp.mod(off_x, factor * width)
        off_y = xnp.mod(off_y, factor * height)
    else:
        # Beyond this bound every source point lies outside the picture on the
        # same side, so a larger offset samples the same pixels.
        bound_x = 2.0 * width + (xnp.abs(a0) * width + xnp.abs(a1) * height)
        bound_y = 2.0 * height + (xnp.abs(b0) * width + xnp.abs(b1) * height)
        off_x = xnp.clip(off_x, -bound_x, bound_x)
        off_y = xnp.clip(off_y, -bound_y, bound_y)
    return a0, a1, off_x, b0, b1, off_y


def _source_coordinates(ops, matrix, height, width, fill_mode):
    """Maps every output pixel to the continuous source position it samples."""
    a0, a1, a2, b0, b1, b2 = _reduce_offsets(
        ops, matrix, ops.cast(height, "float32"), ops.cast(width, "float32"), fill_mode
    )
    ys = ops.cast(ops.arange(height, dtype="int32"), "float32")[None, :, None]
    xs = ops.cast(ops.arange(width, dtype="int32"), "float32")[None, None, :]
    column = a0[:, None, None] * xs + a1[:, None, None] * ys + a2[:, None, None]
    row = b0[:, None, None] * xs + b1[:, None, None] * ys + b2[:, None, None]
    return column, row


def _fold(xnp, coordinate, size, fill_mode):
    """Brings a source coordinate into the range the gather reads, by ``fill_mode``.

    For "constant" the picture is padded by one pixel of ``fill_value`` on each
    side, so coordinates are kept in ``[-1, size]``: beyond that a neighbour is
    fill either way.
    """
    if fill_mode == "constant":
        return xnp.clip(coordinate, -1.0, size)
    if fill_mode == "reflect":
        coordinate = _reflect(xnp, coordinate, size)
    elif fill_mode == "wrap":
        coordinate = xnp.mod(coordinate, size)
        # float32 rounding can give exactly `size` for a tiny negative coordinate.
        return xnp.where(coordinate >= size, coordinate - size, coordinate)
    return xnp.clip(coordinate, 0.0, size - 1.0)


def warp(
    ops,
    images,
    matrix,
    interpolation="bilinear",
    fill_mode="nearest",
    fill_value=0.0,
    dtype="float32",
):
    """Resamples a batch of pictures, each by its own affine matrix, in one pass.

    Args:
        ops: `keras.ops`, or its TensorFlow twin for TensorFlow tensors under
            another backend (`_tf_data.keras_ops_for`).
        images: ``(batch, height, width, channels)`` pictures, any real dtype.
        matrix: ``(batch, 8)`` float32 rows ``[a0, a1, a2, b0, b1, b2, 0, 0]``
            mapping output pixel ``(x, y)`` (column, row) to the source
            position ``(a0 x + a1 y + a2, b0 x + b1 y + b2)``.
        interpolation: ``"bilinear"`` or ``"nearest"``.
        fill_mode: ``"nearest"``, ``"constant"``, ``"reflect"`` or ``"wrap"``.
        fill_value: The value of pixels from outside with ``"constant"``.
        dtype: The output dtype (the computation is float32).

    Returns:
        The resampled pictures, ``(batch, height, width, channels)``, ``dtype``.
    """
    xnp, cast = ops, ops.cast
    shape = ops.shape(images)
    batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
    images = cast(images, "float32")
    height_f, width_f = cast(height, "float32"), cast(width, "float32")
    column, row = _source_coordinates(ops, matrix, height, width, fill_mode)
    if interpolation == "nearest":
        # Round first, halves up (the same rule at every period of "reflect"
        # and "wrap"), then fold the whole pixel index.
        column, row = xnp.floor(column + 0.5), xnp.floor(row + 0.5)
    column = _fold(xnp, column, width_f, fill_mode)
    row = _fold(xnp, row, height_f, fill_mode)
    if fill_mode == "constant":
        # One pixel of fill all around: index -1 becomes 0, index size becomes size + 1.
        images = xnp.pad(
            images,
            [[0, 0], [1, 1], [1, 1], [0, 0]],
            mode="constant",
            constant_values=fill_value,
        )
        height, width, first = height + 2, width + 2, 1
    else:
        first = 0
    table = xnp.reshape(images, (-1, channels))
    base = (xnp.arange(batch, dtype="int32") * (height * width))[:, None, None]

    def index(coordinate, last):
        return xnp.minimum(cast(coordinate, "int32") + first, last)

    def gather(rows, columns):
        return xnp.take(table, base + rows * width + columns, axis=0)

    if interpolation == "nearest":
        out = gather(index(row, height - 1), index(column, width - 1))
        return cast(out, dtype)
    left, top = xnp.floor(column), xnp.floor(row)
    dx = (column - left)[..., None]
    dy = (row - top)[..., None]
    x0, y0 = index(left, width - 1), index(top, height - 1)
    if fill_mode == "wrap":
        # The right neighbour of the last column is the first column.
        x1 = xnp.where(x0 + 1 >= width, 0, x0 + 1)
        y1 = xnp.where(y0 + 1 >= height, 0, y0 + 1)
    else:
        x1 = xnp.minimum(x0 + 1, width - 1)
        y1 = xnp.minimum(y0 + 1, height - 1)
    upper = gather(y0, x0)
    upper = upper + dx * (gather(y0, x1) - upper)
    lower = gather(y1, x0)
    lower = lower + dx * (gather(y1, x1) - lower)
    return cast(upper + dy * (lower - upper), dtype)
