"""`GradualUnfreezing`: a callback that lets one more block of a base train every few epochs."""

from __future__ import annotations

from typing import Any

import keras

from keras_smalldata import _arguments as args
from keras_smalldata._models import contains_layer
from keras_smalldata.pretrained.base import PretrainedBase
from keras_smalldata.pretrained.learning_rates import (
    DiscriminativeOptimizer,
    block_groups,
)

__all__ = ["GradualUnfreezing"]


class GradualUnfreezing(keras.callbacks.Callback):
    """Lets the blocks of a pretrained base train one at a time, from the top down.

    ULMFiT's gradual unfreezing (Howard & Ruder, 2018): the first epochs
    train the head only; then the last block of the base trains too,
    ``every`` epochs later the block below it, and so on down to the lowest
    block ``base.freeze_until(...)`` allowed to train. The model is compiled
    once, with a `DiscriminativeOptimizer`: the callback sets the multiplier
    of the blocks that wait to 0 and gives them their own back when they are
    due. At the end of ``fit`` every block has its multiplier back.
    ``training_blocks`` records which blocks trained at each epoch.

    Args:
        base: The `PretrainedBase` inside the model. Its BatchNormalization
            layers must not train in a block that waits
            (``train_batchnorm=False``, the default with pretrained weights).
        every: Epochs between two blocks (an int >= 1).
        initial_blocks: Blocks of the base, from the top, that train from the
            first epoch (default 0: the head only).
        verbose: 1 prints a line when a block starts training; 0 is silent.

    Example:

    ```python
    base.freeze_until("block4")                  # blocks 4 and 5 may train
    model.compile(DiscriminativeOptimizer(keras.optimizers.Adam(1e-4), model),
                  "binary_crossentropy")
    unfreezing = GradualUnfreezing(base, every=2)
    model.fit(train, epochs=6, callbacks=[unfreezing])
    unfreezing.training_blocks                   # {0: [], 1: [], 2: ['block5'], ...}
    ```
    """

    def __init__(
        self,
        base: PretrainedBase,
        every: int = 1,
        initial_blocks: int = 0,
        verbose: int = 0,
    ) -> None:
        super().__init__()
        if not isinstance(base, PretrainedBase):
            raise TypeError(
                "`base` must be the PretrainedBase whose blocks are unfrozen. "
                f"{args.received('base', base)}"
            )
        self.base = base
        self.every = args.check_positive_int("every", every, what="epochs")
        self.initial_blocks = args.check_int("initial_blocks", initial_blocks, minimum=0)
        self.verbose = args.check_int("verbose", verbose, minimum=0, maximum=1)
        self.training_blocks: dict[int, list[str]] = {}
        self._stages: list[tuple[str, list, list]] = []
        self._open: int | None = None

    def unfreezing_order(self) -> list[str]:
        """The blocks of the base that will train, in the order they start (top first)."""
        return [name for name, _, _ in self._blocks(keras_variables=None)]

    def _blocks(self, keras_variables) -> list[tuple[str, list, list]]:
        """``[(block, layers, trainable variables)]``, top first, for blocks that can train."""
        allowed = None if keras_variables is None else {id(v) for v in keras_variables}
        stages = []
        for name, layers in reversed(block_groups(self.base)):
            variables = [
                v for layer in layers for v in layer.trainable_weights
                if allowed is None or id(v) in allowed
            ]
            if variables:
                stages.append((name, layers, variables))
        return stages

    def _optimizer(self) -> DiscriminativeOptimizer | None:
        """The model's `DiscriminativeOptimizer`, also inside a wrapper.

        Keras wraps the optimizer of a model compiled under a
        ``mixed_float16`` policy in a ``LossScaleOptimizer``; wrappers hold
        the optimizer they wrap in their public ``inner_optimizer``.
        """
        optimizer, seen = self.model.optimizer, set()
        while optimizer is not None and id(optimizer) not in seen:
            if isinstance(optimizer, DiscriminativeOptimizer):
                return optimizer
            seen.add(id(optimizer))
            optimizer = getattr(optimizer, "inner_optimizer", None)
        return None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        model = self.model
        if self._optimizer() is None:
            chain: list[str] = []
            optimizer = model.optimizer
            while optimizer is not None and len(chain) < 4:
                chain.append(type(optimizer).__name__)
                optimizer = getattr(optimizer, "inner_optimizer", None)
            raise ValueError(
                "GradualUnfreezing holds blocks still through the optimizer: compile "
                "the model with a DiscriminativeOptimizer (alone, or inside the "
                "LossScaleOptimizer Keras adds under a mixed_float16 policy), e.g. "
                "model.compile(DiscriminativeOptimizer(keras.optimizers.Adam(1e-4), "
                f"model), ...). Received: optimizer={model.optimizer!r} ("
                + " wrapping ".join(chain)
                + ")."
            )
        if not contains_layer(model, self.base):
            raise ValueError(
                f"GradualUnfreezing: the base {self.base.name!r} is not part of the "
                f"model {model.name!r} being trained."
            )
        self._stages = self._blocks(model.trainable_variables)
        if not self._stages:
            raise ValueError(
                f"GradualUnfreezing: no block of {self.base.name!r} is trainable, so "
                "there is nothing to unfreeze. Make the blocks that may train "
                "trainable before compiling, e.g. base.freeze_until('block4')."
            )
        self._refuse_training_batchnorm()
        self._open = None
        self.training_blocks = {}

    def _refuse_training_batchnorm(self) -> None:
        names = [
            layer.name
            for _, layers, _ in self._stages[self.initial_blocks :]  # blocks that wait
            for layer in layers
            if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable
        ]
        if names:
            raise ValueError(
                f"GradualUnfreezing: {len(names)} BatchNormalization layers of "
                f"{self.base.name!r} are trainable (train_batchnorm=True) in blocks "
                f"that wait, e.g. {names[:3]}. A waiting block stays trainable with "
                "a zero learning rate, so these layers would run in training mode "
                "and overwrite their statistics. Build the base with "
                "train_batchnorm=False (the default with pretrained weights)."
            )

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        count = min(len(self._stages), self.initial_blocks + epoch // self.every)
        if count != self._open:
            optimizer = self._optimizer()
            if optimizer is None:
                raise ValueError(
                    "GradualUnfreezing: the model's optimizer is no longer a "
                    "DiscriminativeOptimizer (was the model recompiled during fit?). "
                    f"Received: optimizer={self.model.optimizer!r}."
                )
            optimizer.resume_updates([v for _, _, vs in self._stages[:count] for v in vs])
            optimizer.pause_updates([v for _, _, vs in self._stages[count:] for v in vs])
            if self.verbose and count:
                print(
                    f"Epoch {epoch + 1}: GradualUnfreezing: {self._stages[count - 1][0]} "
                    f"trains from now on ({count} of {len(self._stages)} blocks)."
                )
            self._open = count
        self.training_blocks[epoch] = [name for name, _, _ in self._stages[:count]]

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        optimizer = self._optimizer() if self._stages else None
        if optimizer is not None:
            optimizer.resume_updates([v for _, _, vs in self._stages for v in vs])
        self._open = None

    def __repr__(self) -> str:
        return (
            f"GradualUnfreezing(base={self.base.name!r}, every={self.every}, "
            f"initial_blocks={self.initial_blocks})"
        )
