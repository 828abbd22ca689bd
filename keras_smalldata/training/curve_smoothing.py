"""`CurveSmoothing`: a callback that adds smoothed metrics to the epoch logs.

`check_callbacks` checks a callbacks list before `fit` and registers the
monitors of smoothed keys with the `CurveSmoothing` that writes them, so that
the keys that only exist once training runs are checked at the first epoch end.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from keras_smalldata import _arguments as args
from keras_smalldata.training._directions import metric_direction
from keras_smalldata.training._metric_names import (
    is_smoothed_key,
    metric_names,
    raw_key,
    smoothed_key,
)
from keras_smalldata.training.smoothing import ExponentialAverage, validate_factor

__all__ = ["CurveSmoothing", "check_callbacks", "smoothed_key"]

# Logged by learning-rate callbacks; smoothing them means nothing.
_LEARNING_RATE_KEYS = ("learning_rate", "lr")


class CurveSmoothing(keras.callbacks.Callback):
    """Adds an exponentially smoothed copy of each metric to the epoch logs.

    At the end of every epoch it adds ``<key>_smoothed = smooth_curve(values
    so far, factor, debias)[-1]`` to the logs (``val_loss_smoothed``), so
    that the callbacks placed after it in the list (``EarlyStopping``,
    ``ModelCheckpoint``, ``ReduceLROnPlateau``) can monitor the trend, and
    ``History``, ``CSVLogger`` and ``TensorBoard`` record it. Monitors of a
    smoothed key need ``mode="min"`` or ``mode="max"``. Pass the list
    through `check_callbacks`, which checks the monitors before training
    and has this callback check their keys at the first epoch end. The state
    is reset at the start of every ``fit``.

    Args:
        factor: Weight of the past, in [0, 1): 0 copies the raw values, 0.8
            (the default) averages over roughly the last 5 epochs.
        metrics: Which metrics to smooth. None (the default): every numeric
            entry of the logs except learning rates and smoothed keys. A
            name or a list of names: a name without the ``val_`` prefix
            covers both the training and the validation metric
            (``["loss"]``), a name with it only the validation one. A name
            not in the logs raises a ValueError at the first epoch end that
            could hold it.
        debias: True (the default) uses TensorBoard's bias-corrected
            average, the line `plot_history` draws; False the classic one
            seeded with the first value (`smooth_curve`'s default).

    Example:

    ```python
    callbacks = [
        CurveSmoothing(factor=0.8, metrics=["val_loss"]),
        keras.callbacks.EarlyStopping(
            monitor="val_loss_smoothed", mode="min", patience=5),
        keras.callbacks.ModelCheckpoint(
            "best.keras", monitor="val_loss", save_best_only=True),
    ]
    history = model.fit(train, validation_data=val, epochs=50,
                        callbacks=check_callbacks(callbacks))
    history.history["val_loss_smoothed"]
    ```
    """

    def __init__(
        self,
        factor: float = 0.8,
        metrics: str | Sequence[str] | None = None,
        debias: bool = True,
    ) -> None:
        super().__init__()
        self.factor = validate_factor(factor)
        self.metrics = _smoothed_metric_names(metrics)
        self.debias = args.check_bool("debias", debias)
        # Callbacks after this one that monitor a smoothed key, handed over by
        # `check_callbacks`: their keys are checked at the first epoch end.
        self._monitors: tuple[keras.callbacks.Callback, ...] = ()
        self._reset()

    def _reset(self) -> None:
        self._averages: dict[str, ExponentialAverage] = {}
        self._checked = {"training": False, "validation": False}

    def covers(self, key: str) -> bool:
        """Whether this callback writes `<key>_smoothed` when `key` is in the logs.

        Args:
            key: A log key such as `"val_loss"`.

        Returns:
            True if `key` is one of the metrics this callback smooths.
        """
        if is_smoothed_key(key) or key in _LEARNING_RATE_KEYS:
            return False
        if self.metrics is None:
            return True
        return key in self.metrics or (
            key.startswith("val_") and key[len("val_") :] in self.metrics
        )

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._reset()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is None:
            return
        smoothed = {}
        for key, value in logs.items():
            if not self.covers(key):
                continue
            number = _as_scalar(value)
            if number is None:
                continue
            average = self._averages.get(key)
            if average is None:
                average = self._averages[key] = ExponentialAverage(
                    self.factor, debias=self.debias
                )
            smoothed[smoothed_key(key)] = average.update(number)
        logs.update(smoothed)
        self._check_keys(logs)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self._checked["validation"]:
            return
        wanted = [name for name in self.metrics or () if name.startswith("val_")]
        monitors = [
            _describe(c) for c in self._monitors_in_this_fit() if c.monitor.startswith("val_")
        ]
        if not wanted and not monitors:
            return
        parts = []
        if wanted:
            parts.append(
                f"CurveSmoothing(metrics={list(self.metrics or ())!r}) never smoothed {wanted}"
            )
        if monitors:
            parts.append(f"{', '.join(monitors)} never had a value")
        warnings.warn(
            f"No validation metric appeared in the epoch logs: {'; '.join(parts)}. "
            "Validation metrics only exist when `fit` gets `validation_data` or "
            "`validation_split`.",
            stacklevel=2,
        )

    def _check_keys(self, logs) -> None:
        """Raises at the first epoch end where a wanted key should be in the logs.

        Training keys are checked at the first epoch end, validation keys at
        the first epoch end that has any validation key (with
        `validation_freq > 1` the first epochs have none).
        """
        for part in ("training", "validation"):
            if self._checked[part]:
                continue
            is_validation = part == "validation"
            if is_validation and not any(k.startswith("val_") for k in logs):
                continue
            self._checked[part] = True
            problems = self._missing_metrics(logs, is_validation)
            problems += self._missing_monitors(logs, is_validation)
            if problems:
                raise ValueError(
                    "Keys that the callbacks need are not in the epoch logs:\n- "
                    + "\n- ".join(problems)
                    + f"\nKeys in the logs: {sorted(logs)}. Metric names are "
                    "those of history.history (for example 'accuracy', not 'acc')."
                )

    def _missing_metrics(self, logs, is_validation: bool) -> list[str]:
        problems = []
        for name in self.metrics or ():
            if name.startswith("val_") != is_validation or name in logs:
                continue
            raw = [key for key in logs if not is_smoothed_key(key)]
            if not is_validation:
                raw = [key for key in raw if not key.startswith("val_")]
            hint = args.did_you_mean(name, raw, n=1, cutoff=0.5)
            problems.append(
                f"CurveSmoothing(metrics={list(self.metrics or ())!r}): {name!r} is not "
                f"in the epoch logs.{hint}"
            )
        return problems

    def _missing_monitors(self, logs, is_validation: bool) -> list[str]:
        problems = []
        for callback in self._monitors_in_this_fit():
            monitor = callback.monitor
            if monitor.startswith("val_") != is_validation or monitor in logs:
                continue
            source = raw_key(monitor)
            if source in logs:
                reason = (
                    f"{source!r} is in the logs but is not a single number, so it "
                    "is not smoothed."
                )
            else:
                reason = f"its raw key {source!r} is not in the logs."
            candidates = [
                key
                for key in logs
                if is_smoothed_key(key) and key.startswith("val_") == is_validation
            ]
            hint = args.did_you_mean(monitor, candidates, n=1, cutoff=0.5)
            problems.append(f"{_describe(callback)} can never see its key: {reason}{hint}")
        return problems

    def _monitors_in_this_fit(self) -> list[keras.callbacks.Callback]:
        """The registered monitors that take part in the running `fit`.

        Keras gives every callback of a `fit` the same model; a monitor from
        a list checked earlier but not passed to this `fit` has another one
        (or none) and is left alone.
        """
        model = self.model
        if model is None:
            return list(self._monitors)
        return [c for c in self._monitors if c.model is model]

    def __repr__(self) -> str:
        metrics = None if self.metrics is None else list(self.metrics)
        return (
            f"CurveSmoothing(factor={self.factor!r}, metrics={metrics!r}, "
            f"debias={self.debias!r})"
        )


def check_callbacks(
    callbacks: Sequence[keras.callbacks.Callback] | keras.callbacks.CallbackList | None,
) -> list[keras.callbacks.Callback] | keras.callbacks.CallbackList:
    """Checks that monitors on smoothed keys will get their values; wrap `fit`'s list in it.

    For every callback whose ``monitor`` ends in ``_smoothed`` it checks now
    that a `CurveSmoothing` smoothing the raw key comes before it, that its
    ``mode`` is not ``"auto"`` and does not contradict the metric, and that
    it reads the logs at the end of epochs. It registers these monitors
    with the first `CurveSmoothing` of the list, which checks at the end of
    the first epoch (with validation, for ``val_`` keys) that each monitored
    key was written. A ``CSVLogger``, ``TensorBoard`` or ``History`` placed
    before the first `CurveSmoothing` gets a warning.

    Args:
        callbacks: A list or tuple of callbacks (nested lists are flattened),
            or a `keras.callbacks.CallbackList`.

    Returns:
        The callbacks as one flat list, in order, ready for ``fit``; a
        ``CallbackList`` is returned as it is.

    Raises:
        TypeError: If ``callbacks`` is not a list of Keras callbacks.
        ValueError: Listing every monitor on a smoothed key that cannot
            work.

    Example:

    ```python
    callbacks = check_callbacks([
        CurveSmoothing(),
        keras.callbacks.EarlyStopping(
            monitor="val_loss_smoothed", mode="min", patience=5),
    ])
    model.fit(x, y, validation_split=0.2, epochs=50, callbacks=callbacks)
    ```
    """
    items = _flatten_callbacks(callbacks)
    smoothers = [c for c in items if isinstance(c, CurveSmoothing)]
    monitors = [c for c in items if _monitors_smoothed_key(c)]
    problems = []
    for position, callback in enumerate(items):
        if _monitors_smoothed_key(callback):
            problems += _placement_problems(callback, items[:position], items[position + 1 :])
            problems += _mode_problems(callback)
            problems += _frequency_problems(callback)
    if problems:
        raise ValueError(
            "The callbacks cannot monitor the smoothed metrics:\n- "
            + "\n- ".join(problems)
        )
    for index, smoother in enumerate(smoothers):
        smoother._monitors = tuple(monitors) if index == 0 else ()
    if smoothers:
        loggers = (
            keras.callbacks.CSVLogger,
            keras.callbacks.TensorBoard,
            keras.callbacks.History,
        )
        early = [
            type(c).__name__
            for c in items[: items.index(smoothers[0])]
            if isinstance(c, loggers)
        ]
        if early:
            warnings.warn(
                f"{', '.join(early)} {'comes' if len(early) == 1 else 'come'} "
                "before CurveSmoothing in the callbacks, so the smoothed keys "
                "will not be recorded there. Put CurveSmoothing first.",
                stacklevel=2,
            )
    if isinstance(callbacks, keras.callbacks.CallbackList):
        return callbacks
    return items


def _monitors_smoothed_key(callback) -> bool:
    """Whether `callback` reads a smoothed key from the logs at every epoch."""
    monitor = getattr(callback, "monitor", None)
    if not isinstance(monitor, str) or not is_smoothed_key(monitor):
        return False
    # A ModelCheckpoint that saves every epoch does not read its monitor.
    return getattr(callback, "save_best_only", True) is not False


def _describe(callback) -> str:
    return f"{type(callback).__name__}(monitor={callback.monitor!r})"


def _placement_problems(callback, before, after) -> list[str]:
    monitor = callback.monitor
    source = raw_key(monitor)
    name = _describe(callback)
    smoothers_before = [c for c in before if isinstance(c, CurveSmoothing)]
    smoothers_after = [c for c in after if isinstance(c, CurveSmoothing)]
    if any(c.covers(source) for c in smoothers_before):
        return []
    if any(c.covers(source) for c in smoothers_after):
        return [
            f"{name} comes before the CurveSmoothing that writes {monitor!r}: "
            "callbacks share the logs in list order, so it would never see the "
            "value. Move CurveSmoothing before it."
        ]
    if smoothers_before or smoothers_after:
        listed = ", ".join(repr(c) for c in smoothers_before + smoothers_after)
        return [
            f"{name}: no CurveSmoothing in the list smooths {source!r} ({listed}). "
            f"Add {source!r} to its `metrics`, or use metrics=None to smooth every "
            "metric."
        ]
    return [
        f"{name}: there is no CurveSmoothing in the callbacks, so {monitor!r} never "
        "exists. Add CurveSmoothing() before it."
    ]


def _mode_problems(callback) -> list[str]:
    mode = getattr(callback, "mode", None)
    source = raw_key(callback.monitor)
    direction = metric_direction(source)
    name = _describe(callback)
    if mode == "auto":
        return [
            f"{name} has mode='auto': Keras cannot tell whether a smoothed key "
            "should go down or up and raises at the end of the first epoch. "
            f"Pass {_mode_hint(direction)}."
        ]
    if direction is not None and mode in ("min", "max") and mode != direction:
        better = "lower" if direction == "min" else "higher"
        return [
            f"{name} has mode={mode!r}, but {source!r} is better when {better}: it "
            f"would keep the worst epochs. Pass mode={direction!r}."
        ]
    return []


def _frequency_problems(callback) -> list[str]:
    save_freq = getattr(callback, "save_freq", "epoch")
    if save_freq == "epoch":
        return []
    return [
        f"{_describe(callback)} has save_freq={save_freq!r}: it reads its monitor at "
        "the end of batches, and smoothed keys are only written at the end of "
        "epochs. Pass save_freq='epoch'."
    ]


def _mode_hint(direction: str | None) -> str:
    if direction is None:
        return "mode='min' (lower is better) or mode='max' (higher is better)"
    return f"mode={direction!r}"


def _smoothed_metric_names(metrics) -> tuple[str, ...] | None:
    names = metric_names(metrics)
    if names is None:
        return None
    for name in names:
        if is_smoothed_key(name):
            raise ValueError(
                f"`metrics` names the raw metrics to smooth; {name!r} is already "
                f"a smoothed key. Use {raw_key(name)!r}. "
                f"{args.received('metrics', metrics)}"
            )
    return names


def _flatten_callbacks(callbacks) -> list:
    if isinstance(callbacks, keras.callbacks.CallbackList):
        return list(callbacks.callbacks)
    if callbacks is None:
        return []
    if isinstance(callbacks, keras.callbacks.Callback):
        return [callbacks]
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError(
            "`callbacks` must be a list of Keras callbacks (what you pass to "
            f"`fit`). {args.received('callbacks', callbacks)}"
        )
    items = []
    for item in callbacks:
        if isinstance(item, (list, tuple)):
            items.extend(_flatten_callbacks(item))
        elif isinstance(item, keras.callbacks.Callback):
            items.append(item)
        else:
            raise TypeError(
                "`callbacks` must hold keras.callbacks.Callback instances. "
                f"Received an item {item!r} of type {type(item).__name__}."
            )
    return items


def _as_scalar(value) -> float | None:
    """`value` as a float if it is a single number, else None."""
    if isinstance(value, (str, bytes, bool)):
        return None
    try:
        array = np.asarray(value)
    except Exception:
        return None
    if array.ndim != 0 or array.dtype.kind not in "fiu":
        return None
    return float(array)
