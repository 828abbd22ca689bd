"""`lr_range_test`: Leslie Smith's learning-rate range test, on a compiled model."""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import TYPE_CHECKING

import keras
import numpy as np

from keras_smalldata import _arguments as args
from keras_smalldata._backend import is_tf_dataset
from keras_smalldata._figures import new_figure
from keras_smalldata._models import check_model, unique_variables
from keras_smalldata._types import Data
from keras_smalldata.training.smoothing import ExponentialAverage, validate_factor

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["LearningRateRange", "lr_range_test"]

_DEFAULT_BATCH_SIZE = 32


@dataclasses.dataclass(frozen=True)
class LearningRateRange:
    """What `lr_range_test` measured: the loss at each learning rate, and a suggestion.

    Attributes:
        learning_rates: The rate of each step that ran, rising exponentially
            (float64). Shorter than ``steps`` when the test stopped early.
        losses: The training loss of each step's batch, before that step's
            update (the loss Keras reports); NaN or infinite at the last step
            when the loss blew up.
        smoothed_losses: ``losses`` smoothed by the debiased moving average
            of `smooth_curve` with the test's ``factor``; NaN where the raw
            loss was not finite.
        suggestion: The rate where the smoothed loss falls fastest per
            decade of rate, before its minimum (the first tenth of the rates
            left out); None when the smoothed loss never fell.
        minimum_rate: The rate at the smoothed minimum (``minimum_rate /
            10`` is a more cautious choice than the suggestion).
        stop_reason: ``"completed"``, ``"diverged"`` (the smoothed loss
            passed ``divergence`` times its best) or ``"non-finite loss"``.
    """

    learning_rates: np.ndarray
    losses: np.ndarray
    smoothed_losses: np.ndarray
    suggestion: float | None
    minimum_rate: float | None
    stop_reason: str

    def plot(
        self, ax: Axes | None = None, figsize: tuple[float, float] | None = None
    ) -> Figure:
        """Draws the loss against the learning rate (log axis), the suggestion marked.

        The raw losses are light dots, the smoothed loss a line; a dashed
        vertical line marks the suggestion and a dotted one the minimum.

        Args:
            ax: A matplotlib Axes to draw into; None makes a new Figure.
            figsize: Figure size in inches when ``ax`` is None.

        Returns:
            The `matplotlib.figure.Figure`.

        Example:

        ```python
        figure = result.plot()
        figure.savefig("lr_range_test.png")
        ```
        """
        if ax is None:
            figure = new_figure(figsize=figsize or (6.0, 4.0), layout="constrained")
            ax = figure.add_subplot()
        else:
            figure = ax.figure
        rates = self.learning_rates
        ax.plot(rates, self.losses, linestyle="None", marker=".", alpha=0.3,
                color="tab:blue", label="loss")
        ax.plot(rates, self.smoothed_losses, color="tab:blue", label="smoothed loss")
        ax.set_xscale("log")
        ax.set_xlabel("Learning rate")
        ax.set_ylabel("Loss")
        finite = self.smoothed_losses[np.isfinite(self.smoothed_losses)]
        if finite.size:
            # The raw points of a diverging end would squash the useful part.
            low, high = float(finite.min()), float(finite.max())
            margin = 0.05 * (high - low) or 0.05 * abs(high) or 0.05
            ax.set_ylim(low - margin, high + margin)
        if self.minimum_rate is not None:
            ax.axvline(self.minimum_rate, color="gray", linestyle=":", gid="minimum_rate",
                       label=f"minimum {self.minimum_rate:.2g}")
        if self.suggestion is not None:
            ax.axvline(self.suggestion, color="tab:red", linestyle="--", gid="suggestion",
                       label=f"suggestion {self.suggestion:.2g}")
        ax.set_title("Learning-rate range test")
        ax.legend()
        return figure


def lr_range_test(
    model: keras.Model,
    data: Data,
    *,
    start: float = 1e-7,
    stop: float = 1.0,
    steps: int = 100,
    factor: float = 0.98,
    divergence: float | None = 4.0,
    batch_size: int | None = None,
    seed: int | None = None,
    verbose: int = 1,
) -> LearningRateRange:
    """Trains briefly over rising learning rates to find a good one, then undoes it.

    Leslie Smith's range test, as fastai's ``lr_find`` runs it: one training
    step per batch with ``model.train_on_batch``, the rate growing
    exponentially from ``start`` to ``stop``, the loss of every step
    recorded. It stops early when the smoothed loss passes ``divergence``
    times its best, or at the first NaN or infinite loss. Afterwards
    everything the test changed is put back, even when it is interrupted:
    the model's variables, the optimizer's variables and the metrics' state.

    Args:
        model: A compiled model whose optimizer's learning rate is a number,
            not a schedule (compile with a constant rate for the test).
        data: A ``tf.data.Dataset`` of batches ``(x, y)`` (or ``(x, y,
            sample_weight)``), or arrays ``(x, y)`` (or ``(x, y,
            sample_weight)``), shuffled and batched as ``fit`` does. It is
            repeated when it has fewer batches than ``steps``.
        start: The first learning rate, > 0.
        stop: The last learning rate, > ``start``.
        steps: How many steps (batches, rates), >= 2.
        factor: The ``factor`` of the debiased moving average of the loss,
            in [0, 1); 0.98 as fastai.
        divergence: Stops when the smoothed loss exceeds ``divergence``
            times the best so far (a number > 1); None never stops early
            except on a non-finite loss.
        batch_size: The batch size for arrays (default 32); a dataset is
            already batched.
        seed: Seeds the shuffling of arrays (int >= 0 or None).
        verbose: 1 (default) shows a progress bar; 0 is silent.

    Returns:
        A `LearningRateRange` with the rates, the raw and smoothed losses,
        the suggestion and ``plot()``.

    Raises:
        ValueError: For an uncompiled model, a learning rate that is a
            schedule, gradient accumulation, a model without trainable
            weights, or empty data.

    Example:

    ```python
    model.compile(keras.optimizers.Adam(), "sparse_categorical_crossentropy")
    result = lr_range_test(model, (x_train, y_train), steps=100)
    result.plot()
    model.fit(x_train, y_train, epochs=10)  # same weights as before the test
    ```
    """
    check_model(model)
    optimizer = _check_optimizer(model)
    start = args.check_number("start", start, 0.0, include_minimum=False, example="1e-7")
    stop = args.check_number("stop", stop, 0.0, include_minimum=False, example="1.0")
    if start >= stop:
        raise ValueError(
            "`start` must be smaller than `stop`: the rates rise from start to stop. "
            f"Received: start={start!r}, stop={stop!r}."
        )
    steps = args.check_int("steps", steps, minimum=2)
    factor = validate_factor(factor)
    divergence = args.check_number(
        "divergence", divergence, 1.0, include_minimum=False, example="4.0", allow_none=True
    )
    seed = args.check_seed(seed)
    verbose = args.check_int("verbose", verbose, minimum=0, maximum=1)
    batches = _batches(data, batch_size, seed)
    rates = np.geomspace(start, stop, steps)

    first = next(batches)
    if not model.built or not model.weights:
        model(first[0], training=False)  # builds it, as the first fit step would
    if not model.trainable_variables:
        raise ValueError(
            f"Model {model.name!r} has no trainable weights: there is nothing for the "
            "range test to train. Unfreeze some layers and compile again."
        )
    if not optimizer.built:
        # The state it would start from in fit, so that it can be restored.
        optimizer.build(model.trainable_variables)
    saved = _Snapshot(model, optimizer)
    losses: list[float] = []
    smoothed: list[float] = []
    stop_reason = "completed"
    average = ExponentialAverage(factor, debias=True)
    best = math.inf
    progbar = keras.utils.Progbar(steps, unit_name="step") if verbose else None
    try:
        batch = first
        for step, rate in enumerate(rates):
            if step:
                batch = next(batches)
            optimizer.learning_rate = float(rate)
            # Keras before 3.11 returns the mean over every train_on_batch since the
            # last reset, not this step's loss.
            model.reset_metrics()
            logs = model.train_on_batch(*batch, return_dict=True)
            loss = float(keras.ops.convert_to_numpy(logs["loss"]))
            losses.append(loss)
            smoothed.append(average.update(loss))
            if not math.isfinite(loss):
                stop_reason = "non-finite loss"
            else:
                best = min(best, smoothed[-1])
                if divergence is not None and best > 0 and smoothed[-1] > divergence * best:
                    stop_reason = "diverged"
            done = stop_reason != "completed"
            if progbar is not None:
                progbar.update(step + 1, [("loss", loss), ("learning_rate", float(rate))],
                               finalize=done or step + 1 == steps)
            if done:
                break
    finally:
        saved.restore()
    rates = rates[: len(losses)]
    smoothed_losses = np.array(smoothed, dtype=np.float64)
    suggestion, minimum_rate = _suggestions(rates, smoothed_losses)
    if suggestion is None:
        warnings.warn(
            f"lr_range_test: the smoothed loss never fell over the {len(losses)} rates "
            f"tried ({start:g} to {rates[-1]:g}, stopped: {stop_reason}), so there is no "
            "suggestion. Start lower (e.g. start=1e-8) or take more steps.",
            stacklevel=2,
        )
    return LearningRateRange(
        learning_rates=rates.astype(np.float64),
        losses=np.array(losses, dtype=np.float64),
        smoothed_losses=smoothed_losses,
        suggestion=suggestion,
        minimum_rate=minimum_rate,
        stop_reason=stop_reason,
    )


def _suggestions(rates: np.ndarray, smoothed: np.ndarray) -> tuple[float | None, float | None]:
    """(steepest-descent rate, rate at the minimum) of the smoothed loss.

    The first tenth of the points is not searched for the steepest descent:
    there the debiased average rests on a handful of batches, and its swings
    are noise, not the effect of the rate (fastai skips its first 10 points
    for the same reason).
    """
    finite = np.flatnonzero(np.isfinite(smoothed))
    if finite.size == 0:
        return None, None
    rates, smoothed = rates[finite], smoothed[finite]
    lowest = int(np.argmin(smoothed))
    minimum_rate = float(rates[lowest])
    skip = len(rates) // 10
    if lowest <= skip:
        return None, minimum_rate
    # Central differences (one-sided at the ends), before the minimum.
    slopes = np.gradient(smoothed[: lowest + 1], np.log10(rates[: lowest + 1]))[skip:lowest]
    steepest = skip + int(np.argmin(slopes))
    if slopes[steepest - skip] >= 0:
        return None, minimum_rate
    return float(rates[steepest]), minimum_rate


# ------------------------------------------------------------------ checks


def _check_optimizer(model):
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        raise ValueError(
            f"Model {model.name!r} is not compiled: the range test trains it with its "
            "own optimizer and loss. Compile it first, e.g. model.compile("
            "keras.optimizers.Adam(), 'sparse_categorical_crossentropy')."
        )
    if not isinstance(optimizer.learning_rate, keras.Variable):
        raise ValueError(
            f"The optimizer {optimizer.name!r} of {model.name!r} takes its learning rate "
            "from a schedule (a LearningRateSchedule such as OneCycle, or a callable), "
            "which the range test cannot set step by step. Compile with a constant "
            "rate for the test, e.g. keras.optimizers.Adam(1e-3), then compile again "
            "with the schedule: keras.optimizers.Adam(OneCycle(result.suggestion, "
            "total_steps))."
        )
    for candidate in (optimizer, getattr(optimizer, "inner_optimizer", None)):
        if candidate is None:
            continue
        accumulation = getattr(candidate, "gradient_accumulation_steps", None)
        if accumulation and accumulation > 1:
            raise ValueError(
                f"The optimizer {candidate.name!r} accumulates gradients over "
                f"{accumulation} batches, so it does not step with each batch's rate. "
                "Compile without gradient_accumulation_steps for the range test."
            )
    return optimizer


def _batches(data, batch_size, seed):
    """An endless iterator of batches (tuples of NumPy arrays) from ``data``."""
    if is_tf_dataset(data):
        if batch_size is not None:
            raise ValueError(
                "`batch_size` is for arrays: a dataset is already batched (batch it "
                f"with dataset.batch(...)). {args.received('batch_size', batch_size)}"
            )
        spec = data.element_spec
        if not isinstance(spec, tuple) or len(spec) not in (2, 3):
            raise ValueError(
                "`data` must yield batches (x, y) or (x, y, sample_weight), as "
                f"model.fit takes them. Received a dataset of {spec}."
            )
        return _repeat_dataset(data)
    if isinstance(data, tuple) and len(data) in (2, 3):
        batch_size = args.check_positive_int(
            "batch_size", _DEFAULT_BATCH_SIZE if batch_size is None else batch_size
        )
        arrays = tuple(keras.tree.map_structure(np.asarray, part) for part in data)
        counts = {len(leaf) for part in arrays for leaf in keras.tree.flatten(part)}
        if len(counts) != 1:
            raise ValueError(
                "`data` = (x, y): x and y must hold the same number of samples. "
                f"Received lengths {sorted(counts)}."
            )
        count = counts.pop()
        if count == 0:
            raise ValueError("`data` holds no samples.")
        return _repeat_arrays(arrays, count, batch_size, seed)
    raise TypeError(
        "`data` must be a tf.data.Dataset of batches (x, y) or a tuple of arrays "
        f"(x, y). Received: data of type {type(data).__name__}."
    )


def _repeat_dataset(dataset):
    while True:
        empty = True
        for batch in dataset.as_numpy_iterator():
            empty = False
            yield tuple(batch)
        if empty:
            raise ValueError("`data` is an empty dataset: it yields no batch.")


def _repeat_arrays(arrays, count, batch_size, seed):
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(count)
        for begin in range(0, count, batch_size):
            yield _take(arrays, order[begin : begin + batch_size])


def _take(arrays, chosen) -> tuple:
    return tuple(keras.tree.map_structure(lambda a: a[chosen], part) for part in arrays)


class _Snapshot:
    """The values of a model's, its optimizer's and its metrics' variables, to put back."""

    def __init__(self, model, optimizer):
        self.variables = unique_variables(
            [*model.variables, *optimizer.variables, *model.metrics_variables]
        )
        self.values = [keras.ops.convert_to_numpy(v).copy() for v in self.variables]

    def restore(self) -> None:
        for variable, value in zip(self.variables, self.values):
            variable.assign(value)
