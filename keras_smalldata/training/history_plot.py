"""`plot_history`: training vs validation curves, raw and smoothed, in one figure."""

from __future__ import annotations

import difflib
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from keras_smalldata.training._directions import metric_direction
from keras_smalldata.training.curve_smoothing import SMOOTHED_SUFFIX
from keras_smalldata.training.history_io import history_as_dict
from keras_smalldata.training.smoothing import smooth_curve, validate_factor

if TYPE_CHECKING:
    import keras
    from matplotlib.figure import Figure

_SKIPPED_KEYS = ("epoch", "learning_rate", "lr")
_TRAINING_COLOR = "C0"
_VALIDATION_COLOR = "C1"
_BEST_COLOR = "C3"


def plot_history(
    history: keras.callbacks.History | Mapping[str, Sequence[float]] | str | os.PathLike,
    smoothing: float | None = 0.8,
    metrics: str | Sequence[str] | None = None,
    figsize: tuple[float, float] | None = None,
    validation_freq: int | Sequence[int] | None = None,
) -> Figure:
    """Plots training and validation curves, raw and smoothed, one panel per metric.

    Each metric found in the history gets a panel with its training and
    validation curves (`accuracy` with `val_accuracy`, `loss` with
    `val_loss`, and any other pair): the raw values as points and their
    `smooth_curve(values, smoothing)` as a line of the same colour, training
    in blue and validation in orange. Epochs are numbered from 1 (a history
    of a resumed `fit(initial_epoch=...)` keeps its epoch numbers). The best
    raw validation epoch is marked with a star and a dashed vertical line:
    the lowest value for loss-like metrics, the highest for accuracy-like
    ones (the direction comes from the model's Keras metrics when `history`
    is a `History`, otherwise from the name: "loss", "error", "mse"... go
    down, "accuracy", "auc", "precision"... go up; a metric whose direction
    is unknown gets no marker). Ties go to the earliest epoch.

    Keys ending in `_smoothed` (written by `CurveSmoothing`) and learning
    rates are not plotted as metrics. NaN values (a diverged epoch, a `null`
    in JSON, `NA` in a CSVLogger file) are left out of the points and the
    line, which joins the finite values.

    With `fit(validation_freq=k)` the validation lists of a `History` are
    shorter than the training ones. Their epochs are recovered from
    `validation_freq` when you pass it, or inferred when only one interval
    fits the lengths; otherwise a `ValueError` asks for it.

    Args:
        history: The `History` returned by `fit`, its `history.history`
            dict, or a path to a history saved by `save_history` (JSON) or
            written by `keras.callbacks.CSVLogger` (CSV).
        smoothing: The `factor` of `smooth_curve`, in [0, 1), for the lines;
            `None` draws the points only. Defaults to 0.8.
        metrics: Which panels to draw: a metric name or a list of names
            (without the `val_` prefix, e.g. `["accuracy", "loss"]`), in
            that order. `None` (the default) draws every metric found, in
            the order of the history.
        figsize: The figure size in inches, `(width, height)`. Defaults to
            5 x 3.8 inches per panel.
        validation_freq: The `validation_freq` given to `fit` (an int or a
            list of 1-based epochs), to place validation values when the
            validation lists are shorter than the training ones.

    Returns:
        A `matplotlib.figure.Figure` with one `Axes` per metric.

    Raises:
        TypeError: If `history` is not a History, a dict or a path.
        ValueError: If `metrics` names a metric that is not in the history,
            if there is nothing to plot, or if the validation epochs cannot
            be placed.
        FileNotFoundError: If `history` is a path that does not exist.

    Example:

    ```python
    history = model.fit(x, y, validation_split=0.2, epochs=30)
    fig = plot_history(history, smoothing=0.8)
    fig.savefig("curves.png")
    ```
    """
    if smoothing is not None:
        smoothing = validate_factor(smoothing, name="smoothing")
    figsize = _check_figsize(figsize)
    data = history_as_dict(history)
    epochs = _epoch_numbers(history, data)
    bases, series = _metric_pairs(data)
    selected = _select_metrics(metrics, bases, series)
    if not selected:
        raise ValueError(
            "The history has no metric to plot. Received keys: "
            f"{sorted(data)}."
        )
    model = getattr(history, "model", None) if hasattr(history, "history") else None

    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    count = len(selected)
    ncols = count if count <= 3 else (2 if count == 4 else 3)
    nrows = math.ceil(count / ncols)
    if figsize is None:
        figsize = (5.0 * ncols, 3.8 * nrows)
    fig = plt.figure(figsize=figsize, layout="constrained")
    for index, base in enumerate(selected):
        ax = fig.add_subplot(nrows, ncols, index + 1)
        training_key, validation_key = series[base]
        drawn = []
        for key, label, color in (
            (training_key, "Training", _TRAINING_COLOR),
            (validation_key, "Validation", _VALIDATION_COLOR),
        ):
            if key is None:
                continue
            x, y = _placed_values(key, data[key], epochs, validation_freq)
            _draw_series(ax, x, y, f"{label} {base}", color, smoothing)
            drawn.append(label)
            if label == "Validation":
                _mark_best(ax, x, y, metric_direction(base, model=model))
        if len(drawn) == 2:
            ax.set_title(f"Training and validation {base}")
        else:
            ax.set_title(f"{drawn[0]} {base}")
        ax.set_xlabel("Epoch")
        ax.set_ylabel(base)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize="small")
    return fig


def _check_figsize(figsize):
    if figsize is None:
        return None
    if (
        not isinstance(figsize, Sequence)
        or len(figsize) != 2
        or not all(
            isinstance(v, numbers.Real) and not isinstance(v, bool) and v > 0
            for v in figsize
        )
    ):
        raise ValueError(
            "`figsize` must be (width, height) in inches, two positive numbers "
            f"such as (10, 4). Received: figsize={figsize!r}."
        )
    return (float(figsize[0]), float(figsize[1]))


def _epoch_numbers(history, data) -> list[int]:
    """1-based epoch numbers of the longest series."""
    length = max((len(values) for values in data.values()), default=0)
    recorded = getattr(history, "epoch", None) if hasattr(history, "history") else None
    if isinstance(recorded, Sequence) and len(recorded) == length:
        return [int(epoch) + 1 for epoch in recorded]
    return list(range(1, length + 1))


def _is_scalar_series(values) -> bool:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return array.ndim == 1


def _metric_pairs(data):
    """Metric names in history order, and {name: (training key, validation key)}."""
    bases: list[str] = []
    series: dict[str, list] = {}
    for key, values in data.items():
        if key.endswith(SMOOTHED_SUFFIX) or key in _SKIPPED_KEYS:
            continue
        if not _is_scalar_series(values):
            continue
        is_validation = key.startswith("val_")
        base = key[len("val_") :] if is_validation else key
        if base in _SKIPPED_KEYS:
            continue
        if base not in series:
            bases.append(base)
            series[base] = [None, None]
        series[base][1 if is_validation else 0] = key
    return bases, {base: tuple(keys) for base, keys in series.items()}


def _select_metrics(metrics, bases, series):
    if metrics is None:
        return bases
    if isinstance(metrics, str):
        metrics = [metrics]
    if not isinstance(metrics, Sequence):
        raise TypeError(
            "`metrics` must be None, a metric name or a list of names such as "
            f"['accuracy', 'loss']. Received: metrics={metrics!r}."
        )
    selected = []
    for name in metrics:
        if not isinstance(name, str):
            raise TypeError(
                f"`metrics` must hold metric names (strings). Received: {name!r}."
            )
        base = name.removeprefix("val_") if name not in series else name
        if base not in series:
            close = difflib.get_close_matches(base, bases, n=3)
            raise ValueError(
                f"metrics={list(metrics)!r}: {name!r} is not in the history. "
                f"Available metrics: {bases}."
                + (f" Did you mean {close}?" if close else "")
            )
        if base not in selected:
            selected.append(base)
    return selected


def _placed_values(key, values, epochs, validation_freq):
    """(epoch numbers, float values) for one series, NaN where missing."""
    y = np.asarray(values, dtype=np.float64)
    count = len(epochs)
    if len(y) == count:
        return np.asarray(epochs, dtype=np.float64), y
    if len(y) > count:
        raise ValueError(
            f"history[{key!r}] has {len(y)} values but the history has only "
            f"{count} epochs."
        )
    mask = _validation_mask(key, len(y), epochs, validation_freq)
    return np.asarray(epochs, dtype=np.float64)[mask], y


def _validation_mask(key, length, epochs, validation_freq):
    epochs = np.asarray(epochs)
    if validation_freq is None:
        candidates = [
            freq
            for freq in range(1, int(epochs.max(initial=0)) + 1)
            if int(np.sum(epochs % freq == 0)) == length
        ]
        if length == 0:
            return np.zeros(len(epochs), dtype=bool)
        if len(candidates) != 1:
            reason = (
                f"validation_freq could be any of {candidates}"
                if candidates
                else "no int validation_freq gives that many epochs"
            )
            raise ValueError(
                f"history[{key!r}] has {length} values for {len(epochs)} epochs, "
                f"and the epochs they belong to cannot be inferred ({reason}). "
                "Pass the `validation_freq` you gave to `fit` (an int or a list "
                "of 1-based epochs)."
            )
        return epochs % candidates[0] == 0
    if isinstance(validation_freq, numbers.Integral) and not isinstance(
        validation_freq, bool
    ):
        if validation_freq < 1:
            raise ValueError(
                "`validation_freq` must be a positive int or a list of 1-based "
                f"epochs. Received: validation_freq={validation_freq!r}."
            )
        mask = epochs % int(validation_freq) == 0
    elif isinstance(validation_freq, (Sequence, set)) and not isinstance(
        validation_freq, str
    ):
        mask = np.isin(epochs, [int(v) for v in validation_freq])
    else:
        raise ValueError(
            "`validation_freq` must be None, a positive int or a list of 1-based "
            f"epochs, as given to `fit`. Received: validation_freq={validation_freq!r}."
        )
    if int(mask.sum()) != length:
        raise ValueError(
            f"history[{key!r}] has {length} values, but validation_freq="
            f"{validation_freq!r} gives {int(mask.sum())} validation epochs among "
            f"epochs {epochs[0]}..{epochs[-1]}."
        )
    return mask


def _draw_series(ax, x, y, label, color, smoothing):
    finite = np.isfinite(y)
    ax.plot(x[finite], y[finite], "o", color=color, markersize=4, alpha=0.7, label=label)
    if smoothing is not None:
        smoothed = smooth_curve(y, factor=smoothing)
        keep = np.isfinite(smoothed)
        ax.plot(x[keep], smoothed[keep], "-", color=color, linewidth=2, label=f"{label} (smoothed)")


def _mark_best(ax, x, y, direction):
    finite = np.isfinite(y)
    if direction is None or not finite.any():
        return
    values = np.where(finite, y, np.inf if direction == "min" else -np.inf)
    best = int(np.argmin(values) if direction == "min" else np.argmax(values))
    epoch, value = x[best], y[best]
    ax.axvline(epoch, color=_BEST_COLOR, linestyle="--", linewidth=1, alpha=0.6)
    ax.plot(
        [epoch],
        [value],
        "*",
        color=_BEST_COLOR,
        markersize=12,
        label=f"Best epoch {int(epoch)} ({value:.4g})",
    )

