"""Argument checks for the whole package: one message style, "did you mean" hints.

Every public function and layer checks its arguments with these helpers, so a
bad value always gets the same kind of error:

- a value of the wrong type raises `TypeError`, a value of the right type but
  out of range raises `ValueError`;
- the message names the argument, says what would be accepted, and ends with
  ``Received: name=value`` as Keras' own messages do;
- a misspelt choice or name gets the closest accepted ones ("Did you mean
  'nearest'?").

Booleans are refused where a number is expected: ``batch_size=True`` is a
mistake, not 1. Rules that only one sub-package has live in it (the
augmentation ranges in ``augment/_arguments.py``).
"""

from __future__ import annotations

import difflib
import numbers
from collections.abc import Iterable
from typing import Any, Literal, overload

import numpy as np


def is_number(value) -> bool:
    """True for real numbers (Python or NumPy), False for bools."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def is_integer(value) -> bool:
    """True for Python/NumPy integers, False for bools and floats."""
    return isinstance(value, (int, np.integer)) and not isinstance(
        value, (bool, np.bool_)
    )


def received(name: str, value) -> str:
    """The ``Received: name=value.`` ending of every message."""
    return f"Received: {name}={value!r}."


def closest(value, candidates: Iterable, n: int = 3, cutoff: float = 0.6) -> list[str]:
    """The string candidates closest to ``value``, best first (at most ``n``).

    Args:
        value: The misspelt value; anything but a string has no close names.
        candidates: The accepted values (those that are not strings are passed over).
        n: How many names at the most.
        cutoff: How alike a name must be, from 0 to 1 (`difflib`'s ratio).

    Returns:
        A list of names, empty when none is close. A value with capitals
        that matches nothing is tried again in lower case.

    Example:

    ```python
    closest("neerest", ("nearest", "constant"))  # ['nearest']
    ```
    """
    if not isinstance(value, str):
        return []
    names = [c for c in candidates if isinstance(c, str)]
    close = difflib.get_close_matches(value, names, n=n, cutoff=cutoff)
    if not close and value.lower() != value:
        close = difflib.get_close_matches(value.lower(), names, n=n, cutoff=cutoff)
    return close


def did_you_mean(value, candidates: Iterable, n: int = 3, cutoff: float = 0.6) -> str:
    """`` Did you mean 'a' or 'b'?`` for the candidates closest to ``value``, or ``""``."""
    close = closest(value, candidates, n=n, cutoff=cutoff)
    if not close:
        return ""
    return f" Did you mean {' or '.join(repr(c) for c in close)}?"


@overload
def check_int(
    name: str,
    value: Any,
    minimum: int | None = ...,
    maximum: int | None = ...,
    what: str = ...,
    allow_none: Literal[False] = ...,
) -> int: ...
@overload
def check_int(
    name: str,
    value: Any,
    minimum: int | None = ...,
    maximum: int | None = ...,
    what: str = ...,
    *,
    allow_none: bool,
) -> int | None: ...
def check_int(
    name: str,
    value,
    minimum: int | None = None,
    maximum: int | None = None,
    what: str = "",
    allow_none: bool = False,
) -> int | None:
    """Returns ``value`` as an int in ``[minimum, maximum]``.

    Args:
        name: The argument's name, for the message.
        value: The value given.
        minimum: Smallest accepted value (None: no bound).
        maximum: Largest accepted value (None: no bound).
        what: An optional unit or meaning for the message, e.g. "pixels".
        allow_none: Whether None is accepted (and returned).

    Raises:
        TypeError: For a bool, a float or anything that is not an int.
        ValueError: For an int out of range.
    """
    if value is None and allow_none:
        return None
    if minimum == 1 and maximum is None:
        expected = "a positive int"
    elif minimum is not None and maximum is not None:
        expected = f"an int from {minimum} to {maximum}"
    elif minimum is not None:
        expected = f"an int >= {minimum}"
    elif maximum is not None:
        expected = f"an int <= {maximum}"
    else:
        expected = "an int"
    if what:
        expected += f" ({what})"
    if allow_none:
        expected += " or None"
    if not is_integer(value):
        raise TypeError(f"`{name}` must be {expected}. {received(name, value)}")
    if (minimum is not None and value < minimum) or (
        maximum is not None and value > maximum
    ):
        raise ValueError(f"`{name}` must be {expected}. {received(name, value)}")
    return int(value)


def check_positive_int(name: str, value, what: str = "") -> int:
    """Returns ``value`` as an int >= 1 (see `check_int`)."""
    return check_int(name, value, minimum=1, what=what)


def check_bool(name: str, value) -> bool:
    """Returns ``bool(value)`` for a Python/NumPy bool; raises TypeError otherwise."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"`{name}` must be True or False. {received(name, value)}")


def check_seed(value, name: str = "seed") -> int | None:
    """Returns a seed: None or an int >= 0.

    Raises:
        TypeError: For a value that is not an int (``seed=1.5``, ``seed="1"``).
        ValueError: For a negative int (``seed=-1``).
    """
    return check_int(name, value, minimum=0, allow_none=True)


@overload
def sub_seed(seed: int, index: int) -> int: ...
@overload
def sub_seed(seed: None, index: int) -> None: ...
def sub_seed(seed: int | None, index: int) -> int | None:
    """The seed of the ``index``-th random part of something seeded with ``seed``.

    ``seed + index`` (None stays None): the parts of one seeded whole (the
    layers of a preset, the generators of a mixing) draw different sequences,
    and the whole reproduces its draws from its one seed.
    """
    return None if seed is None else seed + index


@overload
def check_number(
    name: str,
    value: Any,
    minimum: float | None = ...,
    maximum: float | None = ...,
    *,
    include_minimum: bool = ...,
    include_maximum: bool = ...,
    example: str | None = ...,
    allow_none: Literal[False] = ...,
) -> float: ...
@overload
def check_number(
    name: str,
    value: Any,
    minimum: float | None = ...,
    maximum: float | None = ...,
    *,
    include_minimum: bool = ...,
    include_maximum: bool = ...,
    example: str | None = ...,
    allow_none: bool,
) -> float | None: ...
def check_number(
    name: str,
    value,
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    include_minimum: bool = True,
    include_maximum: bool = True,
    example: str | None = None,
    allow_none: bool = False,
) -> float | None:
    """Returns ``float(value)`` for a finite real number within the bounds.

    Raises:
        TypeError: For a bool or a value that is not a real number.
        ValueError: For NaN, infinity or a number out of bounds.
    """
    if value is None and allow_none:
        return None
    low = "" if minimum is None else ("[" if include_minimum else "(") + f"{minimum:g}"
    high = "" if maximum is None else f"{maximum:g}" + ("]" if include_maximum else ")")
    if minimum is not None and maximum is not None:
        expected = f"a number in {low}, {high}"
    elif minimum is not None:
        expected = f"a number {'>=' if include_minimum else '>'} {minimum:g}"
    elif maximum is not None:
        expected = f"a number {'<=' if include_maximum else '<'} {maximum:g}"
    else:
        expected = "a finite number"
    if example is not None:
        expected += f", e.g. {name}={example}"
    if allow_none:
        expected += ", or None"
    if not is_number(value):
        raise TypeError(f"`{name}` must be {expected}. {received(name, value)}")
    number = float(value)
    too_low = minimum is not None and (
        number < minimum or (not include_minimum and number == minimum)
    )
    too_high = maximum is not None and (
        number > maximum or (not include_maximum and number == maximum)
    )
    if not np.isfinite(number) or too_low or too_high:
        raise ValueError(f"`{name}` must be {expected}. {received(name, value)}")
    return number


def check_choice(name: str, value, choices: tuple):
    """Returns ``value`` if it is one of ``choices``; raises a ValueError with hints."""
    if any(value is c or (type(value) is type(c) and value == c) for c in choices):
        return value
    hint = did_you_mean(value, choices, n=2, cutoff=0.5)
    raise ValueError(
        f"`{name}` must be one of {list(choices)}.{hint} {received(name, value)}"
    )


def check_unknown_keywords(owner: str, kwargs: dict, accepted: Iterable[str]) -> None:
    """Raises a TypeError naming the first keyword ``owner`` does not take."""
    accepted = list(accepted)
    for key, value in kwargs.items():
        hint = did_you_mean(key, accepted)
        raise TypeError(
            f"{owner} got an unexpected keyword argument {key}={value!r}.{hint} "
            f"Accepted: {', '.join(accepted)}."
        )


def check_value_range(name: str, value) -> tuple[float, float]:
    """Returns ``(low, high)`` floats with low < high, e.g. a pixel value range."""
    if (
        not isinstance(value, (tuple, list, np.ndarray))
        or len(value) != 2
        or not all(is_number(v) for v in value)
    ):
        raise TypeError(
            f"`{name}` must be a pair of numbers (low, high), e.g. (0, 255). "
            f"{received(name, value)}"
        )
    low, high = float(value[0]), float(value[1])
    if not (np.isfinite(low) and np.isfinite(high)) or low >= high:
        raise ValueError(
            f"`{name}` must be a pair (low, high) with low < high, e.g. (0, 255) or "
            f"(0, 1). {received(name, value)}"
        )
    return low, high
