"""`plot_history`: training vs validation curves, raw and smoothed, in one figure."""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from keras_smalldata import _arguments as args
from keras_smalldata._figures import new_figure
from keras_smalldata.training._directions import metric_direction
from keras_smalldata.training._metric_names import is_smoothed_key, metric_names
from keras_smalldata.training.history_io import history_as_dict
from keras_smalldata.training.smoothing import smooth_curve, validate_factor

if TYPE_CHECKING:
    import keras
    from matplotlib.figure import Figure

_SKIPPED_KEYS = ("epoch", "learning_rate", "lr")
_TRAINING_COLOR = "C0"
_VALIDATION_COLOR = "C1"
_BEST_COLOR = "C3"
# The gid of the artists that mark the best epoch (one dashed line and, where
# the panel has a validation value at that epoch, one star).
BEST_EPOCH_GID = "best_epoch"
_MODES = ("auto", "min", "max")
_DEFAULT_MONITOR = "val_loss"


def plot_history(
    history: keras.callbacks.History | Mapping[str, Sequence[float]] | str | os.PathLike,
    *,
    factor: float | None = 0.8,
    metrics: str | Sequence[str] | None = None,
    figsize: tuple[float, float] | None = None,
    validation_freq: int | Sequence[int] | None = None,
    debias: bool = True,
    monitor: str | None = _DEFAULT_MONITOR,
    mode: str = "auto",
) -> Figure:
    """Plots training and validation curves, raw and smoothed, one panel per metric.

    Each metric gets a panel with its training and validation values as
    points and their `smooth_curve` as lines; epochs are numbered from 1.
    One best epoch, chosen by ``monitor`` as ``ModelCheckpoint`` would, is
    marked in every panel and named in the legend, below the panels. Keys
    ending in ``_smoothed`` and learning rates are not plotted; NaN values
    are left out.

    Args:
        history: The `History` returned by ``fit``, its ``history.history``
            dict, or a path to a history saved by `save_history` (JSON) or
            written by ``keras.callbacks.CSVLogger`` (CSV).
        factor: The ``factor`` of `smooth_curve`, in [0, 1), for the lines;
            None draws the points only.
        metrics: Which panels to draw: a metric name or a list of names
            (without the ``val_`` prefix), in that order. None (the
            default) draws every metric, in the order of the history.
        figsize: The figure size in inches, ``(width, height)``. Defaults
            to 5 x 3.8 inches per panel, plus room for the legend.
        validation_freq: The ``validation_freq`` given to ``fit`` (an int or
            a list of 1-based epochs), to place validation values when the
            validation lists are shorter than the training ones and their
            epochs cannot be inferred.
        debias: Whether the lines use the bias-corrected average (the
            default) or the classic one seeded with the first value.
        monitor: The history key that chooses the best epoch (default
            ``"val_loss"``; a history without it gets no mark), or None for
            no mark.
        mode: ``"min"`` (lowest is best), ``"max"``, or ``"auto"`` (the
            default: from the model's metrics when ``history`` is a
            `History`, otherwise from the key's name).

    Returns:
        A `matplotlib.figure.Figure` with one ``Axes`` per metric.

    Raises:
        TypeError: If ``history`` is not a History, a dict or a path.
        ValueError: If ``metrics`` or ``monitor`` names a key that is not in
            the history, if the direction of ``monitor`` is unknown with
            ``mode="auto"``, if there is nothing to plot, or if the
            validation epochs cannot be placed.
        FileNotFoundError: If ``history`` is a path that does not exist.

    Example:

    ```python
    history = model.fit(x, y, validation_split=0.2, epochs=30)
    fig = plot_history(history, factor=0.8)
    fig.savefig("curves.png")
    ```
    """
    if factor is not None:
        factor = validate_factor(factor)
    debias = args.check_bool("debias", debias)
    args.check_choice("mode", mode, _MODES)
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
    best = _best_epoch(data, epochs, validation_freq, monitor, mode, model)

    from matplotlib.ticker import MaxNLocator

    count = len(selected)
    ncols = count if count <= 3 else (2 if count == 4 else 3)
    nrows = math.ceil(count / ncols)
    if figsize is None:
        figsize = (5.0 * ncols, 3.8 * nrows + 0.7)
    fig = new_figure(figsize=figsize, layout="constrained")
    legend_entries: dict[str, object] = {}
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
            points, line = _draw_series(ax, x, y, f"{label} {base}", color, factor, debias)
            legend_entries.setdefault(label, points)
            if line is not None:
                legend_entries.setdefault(f"{label}, smoothed", line)
            drawn.append((label, x, y))
        if best is not None:
            legend_entries.setdefault(best["label"], _mark_best(ax, best, drawn))
        if len(drawn) == 2:
            ax.set_title(f"Training and validation {base}")
        else:
            ax.set_title(f"{drawn[0][0]} {base}")
        ax.set_xlabel("Epoch")
        ax.set_ylabel(base)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        _clip_to_unit_interval(ax, base, drawn)
    _add_legend(fig, legend_entries, factor, debias)
    return fig


_BOUNDED_METRICS = ("accuracy", "auc", "precision", "recall")


def _clip_to_unit_interval(ax, base, drawn) -> None:
    # A metric that cannot leave [0, 1] gets no axis beyond it (matplotlib's margin
    # would run an accuracy axis to 1.04).
    if not any(word in base for word in _BOUNDED_METRICS):
        return
    values = np.concatenate([np.asarray(y, dtype=float) for _, _, y in drawn])
    values = values[np.isfinite(values)]
    if values.size and values.min() >= 0.0 and values.max() <= 1.0:
        low, high = ax.get_ylim()
        ax.set_ylim(max(low, 0.0), min(high, 1.0))


def _check_figsize(figsize):
    if figsize is None:
        return None
    if (
        not isinstance(figsize, Sequence)
        or len(figsize) != 2
        or not all(args.is_number(v) and 0 < v < math.inf for v in figsize)
    ):
        raise ValueError(
            "`figsize` must be (width, height) in inches, two positive numbers "
            f"such as (10, 4). {args.received('figsize', figsize)}"
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
        if is_smoothed_key(key) or key in _SKIPPED_KEYS:
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
    names = metric_names(metrics)
    if names is None:
        return bases
    selected = []
    for name in names:
        base = name.removeprefix("val_") if name not in series else name
        if base not in series:
            raise ValueError(
                f"metrics={list(names)!r}: {name!r} is not in the history. "
                f"Available metrics: {bases}.{args.did_you_mean(base, bases)}"
            )
        if base not in selected:
            selected.append(base)
    return selected


def _best_epoch(data, epochs, validation_freq, monitor, mode, model):
    """The epoch to mark, as a dict, or None when there is nothing to mark."""
    if monitor is None:
        return None
    if not isinstance(monitor, str):
        raise TypeError(
            "`monitor` must be a history key such as 'val_loss', or None. "
            f"{args.received('monitor', monitor)}"
        )
    if monitor not in data:
        if monitor == _DEFAULT_MONITOR:
            return None  # A history without validation: no validation epoch to choose.
        raise ValueError(
            f"`monitor` must be a key of the history, to choose the best epoch."
            f"{args.did_you_mean(monitor, list(data))} Keys: {sorted(data)}. "
            f"{args.received('monitor', monitor)}"
        )
    direction = mode if mode != "auto" else metric_direction(monitor, model=model)
    if direction is None:
        raise ValueError(
            f"plot_history cannot tell whether {monitor!r} is better low or high. "
            "Pass mode='min' (lower is better) or mode='max'."
        )
    x, y = _placed_values(monitor, data[monitor], epochs, validation_freq)
    finite = np.isfinite(y)
    if not finite.any():
        return None
    values = np.where(finite, y, np.inf if direction == "min" else -np.inf)
    index = int(np.argmin(values) if direction == "min" else np.argmax(values))
    epoch, value = int(x[index]), float(y[index])
    which = "lowest" if direction == "min" else "highest"
    return {
        "epoch": epoch,
        "label": f"Best epoch {epoch}: {which} {monitor} ({value:.4g})",
    }


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


def _draw_series(ax, x, y, label, color, factor, debias):
    """Draws the raw points and the smoothed line; returns both artists (or None)."""
    finite = np.isfinite(y)
    (points,) = ax.plot(
        x[finite], y[finite], "o", color=color, markersize=4, alpha=0.7, label=label
    )
    if factor is None:
        return points, None
    smoothed = smooth_curve(y, factor=factor, debias=debias)
    keep = np.isfinite(smoothed)
    (line,) = ax.plot(
        x[keep], smoothed[keep], "-", color=color, linewidth=2, label=f"{label} (smoothed)"
    )
    return points, line


def _mark_best(ax, best, drawn):
    """A dashed line at the best epoch, and a star on the panel's validation value there."""
    epoch = best["epoch"]
    line = ax.axvline(
        epoch, color=_BEST_COLOR, linestyle="--", linewidth=1, alpha=0.6,
        label=best["label"], gid=BEST_EPOCH_GID,
    )
    for label, x, y in drawn:
        if label != "Validation":
            continue
        at = np.flatnonzero((x == epoch) & np.isfinite(y))
        if at.size:
            ax.plot(
                [epoch], [y[at[0]]], "*", color=_BEST_COLOR, markersize=12,
                label="_best value", gid=BEST_EPOCH_GID,
            )
    return line


def _add_legend(fig, entries, factor, debias):
    """One legend for the whole figure, below the panels: it covers no data.

    It gets as many columns (up to 3) as fit in the figure's width, and a
    smaller font if one column does not fit.
    """
    title = None
    if any(label.endswith(", smoothed") for label in entries):
        title = f"Lines: factor {factor:g}, {'bias-corrected' if debias else 'classic'}"
    renderer = fig.canvas.get_renderer()
    layouts = [(n, "small") for n in range(min(len(entries), 3), 0, -1)] + [(1, "x-small")]
    for ncols, fontsize in layouts:
        legend = fig.legend(
            list(entries.values()),
            list(entries),
            loc="outside lower center",
            ncols=ncols,
            fontsize=fontsize,
            title=title,
            title_fontsize=fontsize,
            frameon=False,
        )
        if legend.get_window_extent(renderer).width <= fig.bbox.width:
            return
        if (ncols, fontsize) != layouts[-1]:
            legend.remove()
