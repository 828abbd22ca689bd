"""`OneCycle`: the one-cycle learning-rate schedule (Smith & Topin, 2018), as a Keras schedule."""

from __future__ import annotations

import math
from typing import Any

import keras

from keras_smalldata import _arguments as args
from keras_smalldata._types import Tensor

__all__ = ["OneCycle"]


@keras.saving.register_keras_serializable(package="keras_smalldata")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """The one-cycle learning rate: a warm-up to a peak, then a long cosine decay.

    Over the first ``warmup_fraction`` of the steps the rate rises along a
    half cosine from ``maximal_rate / initial_divisor`` to ``maximal_rate``;
    then it falls along a half cosine to ``maximal_rate / final_divisor`` at
    step ``total_steps - 1``, and stays there. A step is a batch (the
    optimizer's ``iterations``). The values are PyTorch's
    ``OneCycleLR(anneal_strategy="cos", three_phase=False)``, step for step.
    The momentum is not cycled.

    Args:
        maximal_rate: The peak learning rate, > 0, e.g. ``1e-3`` (the
            suggestion of `lr_range_test`).
        total_steps: The number of training steps of the cycle (an int >= 1),
            e.g. ``epochs * len(train_dataset)``.
        warmup_fraction: The fraction of the steps spent rising, in [0, 1)
            (PyTorch's ``pct_start``).
        initial_divisor: The first rate is ``maximal_rate / initial_divisor``
            (a number >= 1).
        final_divisor: The last rate is ``maximal_rate / final_divisor`` (a
            number >= 1).
        name: The schedule's name.

    Example:

    ```python
    schedule = OneCycle(1e-3, total_steps=10 * len(train_dataset))
    model.compile(keras.optimizers.Adam(schedule), "binary_crossentropy")
    model.fit(train_dataset, epochs=10)
    ```
    """

    def __init__(
        self,
        maximal_rate: float,
        total_steps: int,
        warmup_fraction: float = 0.3,
        initial_divisor: float = 25.0,
        final_divisor: float = 1e4,
        name: str = "OneCycle",
    ) -> None:
        super().__init__()
        self.maximal_rate = args.check_number(
            "maximal_rate", maximal_rate, 0.0, include_minimum=False, example="1e-3"
        )
        self.total_steps = args.check_positive_int("total_steps", total_steps, what="steps")
        self.warmup_fraction = args.check_number(
            "warmup_fraction", warmup_fraction, 0.0, 1.0, include_maximum=False, example="0.3"
        )
        self.initial_divisor = args.check_number(
            "initial_divisor", initial_divisor, 1.0, example="25"
        )
        self.final_divisor = args.check_number("final_divisor", final_divisor, 1.0,
                                               example="1e4")
        if not isinstance(name, str):
            raise TypeError(f"`name` must be a string. {args.received('name', name)}")
        self.name = name

    @property
    def initial_rate(self) -> float:
        """The rate at step 0: ``maximal_rate / initial_divisor``."""
        return self.maximal_rate / self.initial_divisor

    @property
    def final_rate(self) -> float:
        """The floor, from the last step on: ``maximal_rate / final_divisor``."""
        return self.maximal_rate / self.final_divisor

    def __call__(self, step: int | Tensor) -> Tensor:
        step = keras.ops.cast(step, "float32")
        # As PyTorch's OneCycleLR: the peak at step warmup_end, the floor at decay_end.
        warmup_end = self.warmup_fraction * self.total_steps - 1.0
        decay_end = self.total_steps - 1.0
        if warmup_end > 0:
            warmup = keras.ops.clip(step / warmup_end, 0.0, 1.0)
        else:
            warmup = keras.ops.ones_like(step)
        decay = keras.ops.clip((step - warmup_end) / (decay_end - warmup_end), 0.0, 1.0)
        rising = _cosine(self.initial_rate, self.maximal_rate, warmup)
        falling = _cosine(self.maximal_rate, self.final_rate, decay)
        return keras.ops.where(step <= warmup_end, rising, falling)

    def get_config(self) -> dict[str, Any]:
        return {
            "maximal_rate": self.maximal_rate,
            "total_steps": self.total_steps,
            "warmup_fraction": self.warmup_fraction,
            "initial_divisor": self.initial_divisor,
            "final_divisor": self.final_divisor,
            "name": self.name,
        }

    def __repr__(self) -> str:
        return (
            f"OneCycle(maximal_rate={self.maximal_rate:g}, total_steps={self.total_steps}, "
            f"warmup_fraction={self.warmup_fraction:g}, "
            f"initial_divisor={self.initial_divisor:g}, final_divisor={self.final_divisor:g})"
        )


def _cosine(start: float, end: float, fraction):
    """From ``start`` (fraction 0) to ``end`` (fraction 1) along a half cosine.

    ``end + (start - end) * (1 + cos(pi f)) / 2``, written as a weighted sum of
    two positive terms so that float32 keeps the small initial rate and floor
    exact to a few ulps (the difference form loses them to cancellation).
    """
    angle = (math.pi / 2.0) * fraction
    return start * keras.ops.square(keras.ops.cos(angle)) + end * keras.ops.square(
        keras.ops.sin(angle)
    )
