"""Argument checks shared by the augmentation layers (messages name the argument)."""

from __future__ import annotations

import difflib
import numbers

import numpy as np

FILL_MODES = ("nearest", "constant", "reflect", "wrap")
INTERPOLATIONS = ("bilinear", "nearest")


def is_number(value) -> bool:
    """True for real numbers (Python or NumPy), False for bools."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def is_integer(value) -> bool:
    """True for Python/NumPy integers, False for bools and floats."""
    return isinstance(value, (int, np.integer)) and not isinstance(
        value, (bool, np.bool_)
    )


def check_choice(name: str, value, choices: tuple[str, ...]) -> str:
    """Returns ``value`` if it is one of ``choices``; raises a helpful ValueError."""
    if isinstance(value, str) and value in choices:
        return value
    hint = ""
    if isinstance(value, str):
        close = difflib.get_close_matches(value.lower(), choices, n=2, cutoff=0.5)
        if close:
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?"
    raise ValueError(
        f"{name}={value!r} is not supported: use one of {list(choices)}.{hint}"
    )


def check_non_negative(name: str, value, unit: str, example: str, upper=None) -> float:
    """Returns ``float(value)`` for a number in ``[0, upper)``; raises otherwise."""
    if not is_number(value):
        raise TypeError(
            f"{name} must be a number of {unit} (e.g. {name}={example}), got {value!r}."
        )
    value = float(value)
    if not np.isfinite(value) or value < 0:
        raise ValueError(
            f"{name}={value!r} must be a non-negative number of {unit} "
            f"(e.g. {name}={example}); the draw is symmetric, U(-{name}, +{name})."
        )
    if upper is not None and value >= upper:
        raise ValueError(f"{name}={value!r} must be smaller than {upper} {unit}.")
    return value


def check_bool(name: str, value) -> bool:
    """Returns ``bool(value)`` for a Python/NumPy bool; raises TypeError otherwise."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {value!r}.")


def check_seed(value):
    """Returns a seed (None or a non-negative int)."""
    if value is None:
        return None
    if not is_integer(value) or value < 0:
        raise TypeError(f"seed must be None or a non-negative int, got {value!r}.")
    return int(value)


def check_value_range(name: str, value) -> tuple[float, float]:
    """Returns ``(low, high)`` floats with low < high."""
    if (
        not isinstance(value, (tuple, list, np.ndarray))
        or len(value) != 2
        or not all(is_number(v) for v in value)
    ):
        raise ValueError(
            f"{name} must be a pair of numbers (low, high), e.g. (0, 255), got {value!r}."
        )
    low, high = float(value[0]), float(value[1])
    if not (np.isfinite(low) and np.isfinite(high)) or low >= high:
        raise ValueError(
            f"{name}={value!r} must satisfy low < high, e.g. (0, 255) or (0, 1)."
        )
    return low, high


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
                f"{name}={value!r} must not be negative; use e.g. {example}."
            )
        return int(value)
    if is_number(value):
        value = float(value)
        if not np.isfinite(value) or value < 0:
            raise ValueError(
                f"{name}={value!r} must be a non-negative number; use e.g. {example}."
            )
        return value
    if isinstance(value, (list, tuple, np.ndarray)):
        values = np.asarray(value)
        if (
            values.ndim != 1
            or values.size == 0
            or not all(is_number(v) for v in values.tolist())
        ):
            raise ValueError(
                f"{name}={value!r} must be a non-empty 1-D list of numbers; use e.g. {example}."
            )
        if not np.all(np.isfinite(values.astype(float))):
            raise ValueError(f"{name}={value!r} must hold finite numbers.")
        return [v for v in values.tolist()]
    raise TypeError(
        f"{name} must be a float, an int or a list of numbers; use e.g. {example}. Got {value!r}."
    )


def shift_spec(value):
    """Turns a validated shift range into ``(kind, values, is_fraction)``.

    ``kind`` is "none", "uniform" (``values`` is the half-width) or "choice"
    (``values`` is the tuple of candidates), exactly as ImageDataGenerator reads
    the argument.
    """
    if isinstance(value, list):
        values = tuple(float(v) for v in value)
        return "choice", values, max(values) < 1
    if value == 0:
        return "none", 0.0, False
    if isinstance(value, int):
        # ImageDataGenerator tests np.max(n) < 1 on the int itself: never a fraction.
        return "choice", tuple(float(v) for v in range(value)), False
    return "uniform", float(value), value < 1


def check_zoom_range(value) -> tuple[float, float]:
    """Returns the ``(low, high)`` zoom interval; a float z means [1 - z, 1 + z]."""
    example = "zoom_range=0.2 (i.e. [0.8, 1.2]) or zoom_range=(0.8, 1.2)"
    if is_number(value):
        value = float(value)
        if not np.isfinite(value) or value < 0 or value >= 1:
            raise ValueError(
                f"zoom_range={value!r} must be in [0, 1): a float z draws the zoom from "
                f"[1 - z, 1 + z] and a zoom of 0 or less is impossible. Use e.g. {example}."
            )
        return 1.0 - value, 1.0 + value
    if (
        isinstance(value, (tuple, list, np.ndarray))
        and len(value) == 2
        and all(is_number(v) for v in value)
    ):
        low, high = float(value[0]), float(value[1])
        if not (np.isfinite(low) and np.isfinite(high)) or low <= 0 or high <= 0:
            raise ValueError(
                f"zoom_range={value!r}: both zoom factors must be > 0 (1 = no zoom); use e.g. {example}."
            )
        if low > high:
            raise ValueError(
                f"zoom_range={value!r}: the lower bound must not exceed the upper one; use e.g. {example}."
            )
        return low, high
    raise TypeError(
        f"zoom_range must be a float or a pair of floats; use e.g. {example}. Got {value!r}."
    )
