"""`CurveSmoothing`: a callback that adds smoothed metrics to the epoch logs."""

from __future__ import annotations

import difflib
import inspect
import warnings
from collections.abc import Iterable, Sequence

import keras
import numpy as np

from keras_smalldata.training._directions import metric_direction
from keras_smalldata.training.smoothing import ExponentialAverage, validate_factor

SMOOTHED_SUFFIX = "_smoothed"
# Logged by learning-rate callbacks; smoothing them means nothing.
_LEARNING_RATE_KEYS = ("learning_rate", "lr")


def smoothed_key(key: str) -> str:
    """The log key `CurveSmoothing` writes for `key` (`val_loss` -> `val_loss_smoothed`)."""
    return f"{key}{SMOOTHED_SUFFIX}"


class CurveSmoothing(keras.callbacks.Callback):
    """Adds an exponentially smoothed copy of each metric to the epoch logs.

    On a few hundred pictures the validation curves jump from one epoch to
    the next. At the end of every epoch this callback adds
    `<key>_smoothed = smooth_curve(values so far, factor, debias)[-1]` to
    `logs` for each metric, so that the callbacks placed **after** it in the
    `callbacks` list can react to the trend instead of one lucky or unlucky
    epoch: `EarlyStopping`, `ModelCheckpoint` and `ReduceLROnPlateau` can
    monitor `"val_loss_smoothed"`, and the smoothed values are recorded by
    `History` (`history.history["val_loss_smoothed"]`), `CSVLogger` and
    `TensorBoard`. The `val_` prefix stays first (`val_loss_smoothed`,
    `loss_smoothed`), which is how Keras' TensorBoard callback and CSV tools
    tell validation metrics apart.

    Things to know:

    - Keras' callbacks share one `logs` dict, in list order: put
      `CurveSmoothing` before every callback that reads the smoothed keys.
    - Keras cannot tell whether `"val_loss_smoothed"` should go down or up:
      monitoring callbacks need an explicit `mode="min"` or `mode="max"`
      (with `mode="auto"`, `EarlyStopping` raises at the first epoch end).
    - The smoothed curve lags the raw one by about `factor / (1 - factor)`
      epochs (4 for `factor=0.8`), so `restore_best_weights=True` on a
      smoothed key restores a later epoch than the raw best. Pair it with
      `ModelCheckpoint(monitor="val_loss", save_best_only=True)` to keep the
      weights of the raw best epoch.
    - With `validation_freq > 1` the validation keys are missing on the
      epochs without validation; their smoothed keys are then missing too
      (no value is invented), and the average advances once per evaluation.
    - A NaN or infinite value is skipped, and its smoothed value is NaN.
    - Only epoch-end hooks are used, so Keras keeps its asynchronous batch
      dispatch.
    - When `fit` starts, the callback looks at the other callbacks in the
      list (through the `keras.callbacks.CallbackList` calling it) and raises
      a `ValueError` if a callback monitors a smoothed key that comes before
      it, or that it does not smooth, or with `mode="auto"`; it warns when a
      `CSVLogger`, `TensorBoard` or `History` comes before it. A monitor on a
      smoothed key when no `CurveSmoothing` is in the list at all cannot be
      seen from here: call `check_callbacks(callbacks)` for that.

    The state is reset at the start of every `fit`.

    Args:
        factor: Weight of the past, in [0, 1): `0` copies the raw values,
            `0.8` (the default) averages over roughly the last 5 epochs.
        metrics: Which metrics to smooth. `None` (the default) smooths every
            numeric entry of the logs except learning rates and keys that are
            already smoothed. A list of names: a name without the `val_`
            prefix covers both the training and the validation metric
            (`["loss"]` smooths `loss` and `val_loss`), a name with the prefix
            only the validation one (`["val_loss"]`). A single string is
            accepted too.
        debias: Whether to use TensorBoard's bias-corrected average instead
            of the average seeded with the first value. See `smooth_curve`.

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
        debias: bool = False,
    ):
        super().__init__()
        self.factor = validate_factor(factor)
        self.metrics = _normalise_metric_names(metrics)
        self.debias = bool(debias)
        self._reset()

    def _reset(self) -> None:
        self._averages: dict[str, ExponentialAverage] = {}
        self._names_checked = False

    def covers(self, key: str) -> bool:
        """Whether this callback writes `<key>_smoothed` when `key` is in the logs.

        Args:
            key: A log key such as `"val_loss"`.

        Returns:
            True if `key` is one of the metrics this callback smooths.
        """
        if key.endswith(SMOOTHED_SUFFIX) or key in _LEARNING_RATE_KEYS:
            return False
        if self.metrics is None:
            return True
        return key in self.metrics or (
            key.startswith("val_") and key[len("val_") :] in self.metrics
        )

    def on_train_begin(self, logs=None):
        self._reset()
        callback_list = _calling_callback_list(self)
        if callback_list is not None:
            check_callbacks(callback_list.callbacks)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        if not self._names_checked:
            self._check_metric_names(logs)
            self._names_checked = True
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

    def on_train_end(self, logs=None):
        if self.metrics is None:
            return
        never_seen = [
            name
            for name in self.metrics
            if name.startswith("val_") and name not in self._averages
        ]
        if never_seen:
            warnings.warn(
                f"CurveSmoothing(metrics={list(self.metrics)!r}): {never_seen} never "
                "appeared in the epoch logs, so nothing was smoothed for "
                f"{'it' if len(never_seen) == 1 else 'them'}. Validation metrics "
                "only exist when `fit` gets `validation_data` or `validation_split`.",
                stacklevel=2,
            )

    def _check_metric_names(self, logs) -> None:
        """Raises if a requested training metric is not in the first epoch's logs."""
        if self.metrics is None:
            return
        available = [key for key in logs if not key.endswith(SMOOTHED_SUFFIX)]
        missing = [
            name
            for name in self.metrics
            if not name.startswith("val_") and name not in logs
        ]
        if missing:
            hints = []
            for name in missing:
                close = difflib.get_close_matches(name, available, n=3, cutoff=0.5)
                close += [k for k in available if k.startswith(name) and k not in close]
                if close:
                    hints.append(f"for {name!r} did you mean {close}?")
            raise ValueError(
                f"CurveSmoothing(metrics={list(self.metrics)!r}): {missing} "
                f"{'is' if len(missing) == 1 else 'are'} not in the epoch logs. "
                f"Available keys: {sorted(available)}. "
                + (" ".join(hints) + " " if hints else "")
                + "Metric names are the ones in history.history (for example "
                "'accuracy', not 'acc')."
            )

    def __repr__(self) -> str:
        metrics = None if self.metrics is None else list(self.metrics)
        return (
            f"CurveSmoothing(factor={self.factor!r}, metrics={metrics!r}, "
            f"debias={self.debias!r})"
        )


def check_callbacks(
    callbacks: Sequence[keras.callbacks.Callback] | keras.callbacks.CallbackList | None,
) -> Sequence[keras.callbacks.Callback] | keras.callbacks.CallbackList | None:
    """Checks that monitors on smoothed keys will get their values.

    Keras' callbacks share one `logs` dict in list order, so a callback that
    monitors `"val_loss_smoothed"` only sees a value if a `CurveSmoothing`
    that smooths `val_loss` comes before it. When the smoother is missing or
    placed after, Keras does not fail: `EarlyStopping` just warns at every
    epoch and never stops, `ModelCheckpoint` never saves. This function finds
    these mistakes before training starts.

    `CurveSmoothing` runs the same check on its siblings when `fit` starts,
    but it cannot see a list it is not part of: call this function yourself
    to also catch a forgotten smoother. It returns its argument, so it can
    wrap the list passed to `fit`.

    Checked, for every callback with a `monitor` attribute ending in
    `_smoothed` (`EarlyStopping`, `ModelCheckpoint` with
    `save_best_only=True`, `ReduceLROnPlateau`, your own):

    - a `CurveSmoothing` smoothing the raw key comes before it;
    - its `mode` is not `"auto"` (Keras cannot infer the direction of a
      smoothed key and raises at the end of the first epoch).

    These problems raise a `ValueError` listing all of them. A `CSVLogger`,
    `TensorBoard` or `History` placed before the first `CurveSmoothing` only
    gets a warning: it works, but does not record the smoothed keys.

    Args:
        callbacks: A list or tuple of callbacks (nested lists are flattened),
            or a `keras.callbacks.CallbackList`.

    Returns:
        `callbacks`, unchanged.

    Raises:
        TypeError: If `callbacks` is not a list of Keras callbacks.
        ValueError: If a monitor on a smoothed key cannot work.

    Example:

    ```python
    callbacks = check_callbacks([
        CurveSmoothing(),
        keras.callbacks.EarlyStopping(
            monitor="val_loss_smoothed", mode="min", patience=5),
    ])
    ```
    """
    items = _flatten_callbacks(callbacks)
    problems = []
    for position, callback in enumerate(items):
        monitor = getattr(callback, "monitor", None)
        if not isinstance(monitor, str) or not monitor.endswith(SMOOTHED_SUFFIX):
            continue
        if getattr(callback, "save_best_only", True) is False:
            continue  # A ModelCheckpoint saving every epoch does not read it.
        name = f"{type(callback).__name__}(monitor={monitor!r})"
        raw_key = monitor[: -len(SMOOTHED_SUFFIX)]
        before = [c for c in items[:position] if isinstance(c, CurveSmoothing)]
        after = [c for c in items[position + 1 :] if isinstance(c, CurveSmoothing)]
        if not any(c.covers(raw_key) for c in before):
            if any(c.covers(raw_key) for c in after):
                problems.append(
                    f"{name} comes before the CurveSmoothing that writes "
                    f"{monitor!r}: callbacks share the logs in list order, so it "
                    "would never see the value. Move CurveSmoothing before it."
                )
            elif before or after:
                smoothers = ", ".join(repr(c) for c in before + after)
                problems.append(
                    f"{name}: no CurveSmoothing in the list smooths {raw_key!r} "
                    f"({smoothers}). Add {raw_key!r} to its `metrics`, or "
                    "use metrics=None to smooth every metric."
                )
            else:
                problems.append(
                    f"{name}: there is no CurveSmoothing in the callbacks, so "
                    f"{monitor!r} never exists. Add CurveSmoothing() before it."
                )
        if getattr(callback, "mode", None) == "auto":
            problems.append(
                f"{name} has mode='auto': Keras cannot tell whether a smoothed "
                f"key should go down or up and raises at the end of the first "
                f"epoch. Pass {_mode_hint(raw_key)}."
            )
    if problems:
        raise ValueError(
            "The callbacks cannot monitor the smoothed metrics:\n- "
            + "\n- ".join(problems)
        )
    smoother_positions = [
        i for i, c in enumerate(items) if isinstance(c, CurveSmoothing)
    ]
    if smoother_positions:
        loggers = (
            keras.callbacks.CSVLogger,
            keras.callbacks.TensorBoard,
            keras.callbacks.History,
        )
        early = [
            type(c).__name__
            for c in items[: smoother_positions[0]]
            if isinstance(c, loggers)
        ]
        if early:
            warnings.warn(
                f"{', '.join(early)} {'comes' if len(early) == 1 else 'come'} "
                "before CurveSmoothing in the callbacks, so the smoothed keys "
                "will not be recorded there. Put CurveSmoothing first.",
                stacklevel=2,
            )
    return callbacks


def _mode_hint(raw_key: str) -> str:
    direction = metric_direction(raw_key)
    if direction is None:
        return "mode='min' (lower is better) or mode='max' (higher is better)"
    return f"mode={direction!r}"


def _normalise_metric_names(metrics) -> tuple[str, ...] | None:
    if metrics is None:
        return None
    if isinstance(metrics, str):
        metrics = [metrics]
    if not isinstance(metrics, Iterable):
        raise TypeError(
            "`metrics` must be None, a metric name or a list of metric names, "
            f"for example ['val_loss']. Received: metrics={metrics!r}."
        )
    names = list(metrics)
    for name in names:
        if not isinstance(name, str) or not name:
            raise TypeError(
                "`metrics` must hold metric names (non-empty strings) such as "
                f"'loss' or 'val_accuracy'. Received: metrics={metrics!r}."
            )
        if name.endswith(SMOOTHED_SUFFIX):
            raise ValueError(
                f"`metrics` names the raw metrics to smooth; {name!r} is already "
                f"a smoothed key. Use {name[: -len(SMOOTHED_SUFFIX)]!r}."
            )
    if not names:
        raise ValueError(
            "`metrics` is empty: nothing would be smoothed. Use None to smooth "
            "every metric."
        )
    return tuple(dict.fromkeys(names))


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
            f"`fit`). Received: {callbacks!r} of type {type(callbacks).__name__}."
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


def _calling_callback_list(callback, depth: int = 4):
    """The `CallbackList` whose hook is calling `callback`, if there is one.

    A callback is not told about its siblings. When Keras' `fit` runs it, the
    caller one frame up is `CallbackList.on_train_begin`, whose `self` holds
    them all. Only a `CallbackList` that really contains `callback` is
    returned; anything unexpected gives None (and no check).
    """
    frame = inspect.currentframe()
    try:
        for _ in range(depth + 1):
            if frame is None:
                return None
            candidate = frame.f_locals.get("self")
            if isinstance(candidate, keras.callbacks.CallbackList) and any(
                item is callback for item in getattr(candidate, "callbacks", ())
            ):
                return candidate
            frame = frame.f_back
    except Exception:  # Introspection is best effort only.
        return None
    finally:
        del frame
    return None


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
