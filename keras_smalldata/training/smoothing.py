"""`smooth_curve`: exponential moving average of a training curve."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from keras_smalldata import _arguments as args


def validate_factor(factor, name: str = "factor") -> float:
    """Checks a smoothing factor and returns it as a Python float.

    Args:
        factor: The weight of the past, a real number in [0, 1).
        name: The argument name to use in error messages.

    Returns:
        `factor` as a float.

    Raises:
        TypeError: If `factor` is not a real number (booleans are refused).
        ValueError: If `factor` is outside [0, 1) or is NaN.
    """
    return args.check_number(
        name, factor, 0.0, 1.0, include_maximum=False, example="0.8"
    )


def smooth_curve(
    points: Iterable[float] | np.ndarray,
    factor: float = 0.8,
    debias: bool = False,
) -> np.ndarray:
    """Smooths a training curve with an exponential moving average.

    With ``debias=False`` (the default), the classic recipe's average:
    ``s[0] = p[0]`` and ``s[t] = factor * s[t-1] + (1 - factor) * p[t]``.
    With ``debias=True``, TensorBoard's bias-corrected average, which starts
    from 0 and divides by ``1 - factor ** n`` (n: finite points so far). NaN
    and infinite points are skipped: NaN at their position, and the average
    goes on from the last finite point.

    Args:
        points: The raw values, a 1-D list, tuple or NumPy array of numbers
            (``None`` counts as NaN).
        factor: Weight of the past, in [0, 1); 0 returns the points
            unchanged (as floats).
        debias: Whether to use the bias-corrected average.

    Returns:
        A float64 NumPy array with the same length as ``points``.

    Raises:
        TypeError: If ``factor`` is not a number or ``points`` holds
            something that is not a number.
        ValueError: If ``factor`` is outside [0, 1) or ``points`` is not 1-D.

    Example:

    ```python
    smooth_curve([1.0, 0.0, 0.0], factor=0.5)
    # array([1.  , 0.5 , 0.25])
    smooth_curve([1.0, 0.0, 0.0], factor=0.5, debias=True)
    # array([1.        , 0.33333333, 0.14285714])
    ```
    """
    factor = validate_factor(factor)
    values = _as_float_vector(points)
    average = ExponentialAverage(factor, debias=debias)
    return np.array([average.update(value) for value in values.tolist()], dtype=np.float64)


class ExponentialAverage:
    """The running state behind `smooth_curve`, fed one point at a time.

    `CurveSmoothing` keeps one of these per metric, so the value it writes at
    epoch `t` is exactly `smooth_curve(values[: t + 1], factor, debias)[-1]`.

    Args:
        factor: Weight of the past, in [0, 1).
        debias: Whether to use the bias-corrected average (see `smooth_curve`).
    """

    def __init__(self, factor: float, debias: bool = False):
        self.factor = validate_factor(factor)
        self.debias = args.check_bool("debias", debias)
        self.reset()

    def reset(self) -> None:
        """Forgets every point seen."""
        self.average = 0.0
        self.seen = 0

    def update(self, value: float) -> float:
        """Adds one point and returns the smoothed value at its position.

        A NaN or infinite point is skipped: the state does not change and the
        returned value is NaN.
        """
        value = float(value)
        if not math.isfinite(value):
            return math.nan
        self.seen += 1
        if self.debias:
            self.average = self.factor * self.average + (1.0 - self.factor) * value
            return self.average / (1.0 - self.factor**self.seen)
        if self.seen == 1:
            self.average = value
        else:
            self.average = self.factor * self.average + (1.0 - self.factor) * value
        return self.average


def _as_float_vector(points) -> np.ndarray:
    """Converts `points` to a 1-D float64 array, with None as NaN."""
    if isinstance(points, (str, bytes, dict)):
        raise TypeError(
            "`points` must be a 1-D list or NumPy array of numbers, such as "
            f"history.history['val_loss']. Received: points={points!r}."
        )
    if not isinstance(points, np.ndarray) and hasattr(points, "__iter__"):
        points = list(points)
    try:
        values = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(
            "`points` must hold numbers (NaN and None are allowed). "
            f"Received: points={points!r} ({error})."
        ) from None
    if values.ndim != 1:
        raise ValueError(
            "`points` must be 1-D (one value per epoch). "
            f"Received an array of shape {values.shape}."
        )
    return values
