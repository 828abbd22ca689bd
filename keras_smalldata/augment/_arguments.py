"""Argument checks of the augmentation layers: ImageDataGenerator's ranges and modes.

The package-wide checks and message style are in ``keras_smalldata._arguments``;
these are the rules only the augmentation layers have: the accepted forms of
``rotation_range``, ``width_shift_range``, ``zoom_range``... and the fill
modes and interpolations of the affine warp.
"""

from __future__ import annotations

import numpy as np

from keras_smalldata._arguments import is_integer, is_number, received

FILL_MODES = ("nearest", "constant", "reflect", "wrap")
INTERPOLATIONS = ("bilinear", "nearest")


def check_non_negative(name: str, value, unit: str, example: str, upper=None) -> float:
    """Returns ``float(value)`` for a number of ``unit`` in ``[0, upper)``."""
    if not is_number(value):
        raise TypeError(
            f"`{name}` must be a number of {unit}, e.g. {name}={example}. "
            f"{received(name, value)}"
        )
    number = float(value)
    if not np.isfinite(number) or number < 0:
        raise ValueError(
            f"`{name}` must be a non-negative number of {unit}, e.g. {name}={example} "
            f"(the draw is symmetric, U(-{name}, +{name})). {received(name, value)}"
        )
    if upper is not None and number >= upper:
        raise ValueError(
            f"`{name}` must be smaller than {upper:g} {unit}. {received(name, value)}"
        )
    return number


def check_shift_range(name: str, value):
    """Validates an ImageDataGenerator shift range and returns it config-ready.

    Accepted forms (all of ImageDataGenerator's): a float (``< 1``: fraction of
    the size, ``>= 1``: pixels, drawn from U(-f, f)); an int ``n`` (a whole
    number of pixels from ``range(n)`` with a random sign); a non-empty 1-D
    list/tuple/array of numbers (one element with a random sign, as a fraction
    of the size if all are ``< 1``).
    """
    example = f"{name}=0.2 (fraction), 10.0 (pixels), 3 (range(3)) or [-4, 0, 4]"
    if is_integer(value):
        if value < 0:
            raise ValueError(
                f"`{name}` must not be negative; use e.g. {example}. "
                f"{received(name, value)}"
            )
        return int(value)
    if is_number(value):
        number = float(value)
        if not np.isfinite(number) or number < 0:
            raise ValueError(
                f"`{name}` must be a finite non-negative number; use e.g. {example}. "
                f"{received(name, value)}"
            )
        return number
    if isinstance(value, (list, tuple, np.ndarray)):
        values = np.asarray(value)
        if (
            values.ndim != 1
            or values.size == 0
            or not all(is_number(v) for v in values.tolist())
        ):
            raise ValueError(
                f"`{name}` must be a non-empty 1-D list of numbers; use e.g. {example}. "
                f"{received(name, value)}"
            )
        if not np.all(np.isfinite(values.astype(float))):
            raise ValueError(
                f"`{name}` must hold finite numbers. {received(name, value)}"
            )
        return list(values.tolist())
    raise TypeError(
        f"`{name}` must be a float, an int or a list of numbers; use e.g. {example}. "
        f"{received(name, value)}"
    )


def check_zoom_range(value) -> tuple[float, float]:
    """Returns the ``(low, high)`` zoom interval; a float z means [1 - z, 1 + z]."""
    example = "zoom_range=0.2 (i.e. [0.8, 1.2]) or zoom_range=(0.8, 1.2)"
    if is_number(value):
        number = float(value)
        if not np.isfinite(number) or number < 0 or number >= 1:
            raise ValueError(
                "`zoom_range` must be in [0, 1): a float z draws the zoom from "
                f"[1 - z, 1 + z]; for other intervals pass a pair, e.g. {example}. "
                f"{received('zoom_range', value)}"
            )
        return 1.0 - number, 1.0 + number
    if (
        isinstance(value, (tuple, list, np.ndarray))
        and len(value) == 2
        and all(is_number(v) for v in value)
    ):
        low, high = float(value[0]), float(value[1])
        if not (np.isfinite(low) and np.isfinite(high)) or low <= 0 or high <= 0:
            raise ValueError(
                "`zoom_range`: both zoom factors must be > 0 (1 = no zoom); use e.g. "
                f"{example}. {received('zoom_range', value)}"
            )
        if low > high:
            raise ValueError(
                "`zoom_range`: the lower bound must not exceed the upper one; use e.g. "
                f"{example}. {received('zoom_range', value)}"
            )
        return low, high
    raise TypeError(
        f"`zoom_range` must be a float or a pair of floats; use e.g. {example}. "
        f"{received('zoom_range', value)}"
    )
