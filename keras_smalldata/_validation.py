"""Argument checks shared by the sub-packages."""

from __future__ import annotations

import numpy as np


def check_positive_int(name: str, value, what: str = "") -> int:
    """Returns ``value`` as an int, or raises a ValueError naming the argument.

    Booleans are refused although Python counts them as ints: ``batch_size=True``
    is a mistake, not 1.

    Args:
        name: The argument's name, for the message.
        value: The value given.
        what: An optional unit or meaning added to the message, e.g. "pixels".
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        unit = f" ({what})" if what else ""
        raise ValueError(f"{name} must be a positive int{unit}, got {value!r}.")
    return int(value)
