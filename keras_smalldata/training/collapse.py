"""`CollapseCheck`: a callback that catches a run that collapsed (NaN, or one class)."""

from __future__ import annotations

import math
import warnings
from typing import Any

import keras
import numpy as np

from keras_smalldata import _arguments as args
from keras_smalldata._types import ArrayLike, Data

__all__ = ["CollapseCheck", "TrainingCollapseWarning"]


class TrainingCollapseWarning(UserWarning):
    """A training run collapsed: its loss is not finite, or it predicts one class."""


class CollapseCheck(keras.callbacks.Callback):
    """Stops and reports a run that collapsed: a loss that is not finite, or one class.

    After each epoch it checks the logs (a loss that is not finite is a
    collapse, ``"not finite"``) and, if ``images`` are given, the model's
    predictions on them in inference mode: when the most frequent predicted
    class takes more than ``max_share`` of the pictures while the labels (if
    known) are spread over several classes, the run collapsed to one class
    (``"one class"``). A single sigmoid output counts as two classes.

    On a collapse it warns with a `TrainingCollapseWarning`, stops training
    and records the reason in ``collapse`` (None while the run is healthy)
    and the epoch in ``collapse_epoch``.

    Args:
        images: Pictures to predict after each epoch (an array, or a finite
            dataset of pictures or of (images, labels) batches), or None to
            check the logs only. A few hundred validation pictures suffice.
        labels: The labels of ``images`` (class indices, or one-hot rows),
            to tell a collapse from a set that holds one class. None: taken
            from a dataset of (images, labels) batches.
        max_share: The share of the most frequent predicted class, in
            (0, 1], above which the run counts as collapsed.
        on_collapse: ``"stop"`` (warn and stop) or ``"raise"`` (stop and
            raise a RuntimeError).
        batch_size: Batch size of the prediction.

    Example:

    ```python
    check = CollapseCheck(x_val, y_val)
    model.fit(x_train, y_train, epochs=20, callbacks=[check])
    if check.collapse:
        print(f"collapsed ({check.collapse}) at epoch {check.collapse_epoch}")
    ```
    """

    def __init__(
        self,
        images: Data | None = None,
        labels: ArrayLike | None = None,
        max_share: float = 0.95,
        on_collapse: str = "stop",
        batch_size: int = 64,
    ) -> None:
        super().__init__()
        self.max_share = args.check_number(
            "max_share", max_share, minimum=0.0, maximum=1.0, include_minimum=False
        )
        self.on_collapse = args.check_choice("on_collapse", on_collapse, ("stop", "raise"))
        self.batch_size = args.check_positive_int("batch_size", batch_size)
        self.images, self.labels = _images_and_labels(images, labels)
        self.collapse: str | None = None
        self.collapse_epoch: int | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.collapse = None
        self.collapse_epoch = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        for key, value in (logs or {}).items():
            if "loss" in key and not _finite(value):
                return self._collapsed(epoch, "not finite", f"{key} is {value}")
        if self.images is None:
            return
        predicted = predicted_classes(
            self._predict(), logits=not _ends_in_probabilities(self.model)
        )
        if predicted is None:
            return self._collapsed(epoch, "not finite", "the predictions are not finite")
        counts = np.bincount(predicted)
        share = counts.max() / max(1, len(predicted))
        labels_spread = True
        if self.labels is not None:
            truth = np.bincount(self.labels)
            labels_spread = truth.max() / max(1, len(self.labels)) <= self.max_share
        if share > self.max_share and labels_spread:
            self._collapsed(
                epoch,
                "one class",
                f"class {int(counts.argmax())} takes {share:.0%} of the predictions",
            )

    def _predict(self) -> np.ndarray:
        """The model's outputs in inference mode, batch by batch.

        The model is called directly rather than through ``predict``: a check
        inside ``fit`` should not make Keras build (and TensorFlow retrace) a
        prediction function at every epoch.
        """
        if isinstance(self.images, np.ndarray) or keras.ops.is_tensor(self.images):
            batches = (
                self.images[start : start + self.batch_size]
                for start in range(0, len(self.images), self.batch_size)
            )
        else:
            batches = (
                element[0] if isinstance(element, (tuple, list)) else element
                for element in self.images
            )
        outputs = [
            keras.ops.convert_to_numpy(self.model(np.asarray(batch), training=False))
            for batch in batches
        ]
        return np.concatenate(outputs) if outputs else np.zeros((0, 1))

    def _collapsed(self, epoch: int, reason: str, detail: str) -> None:
        self.collapse, self.collapse_epoch = reason, int(epoch)
        self.model.stop_training = True
        message = (
            f"Training collapsed at epoch {epoch + 1} ({reason}: {detail}); training "
            "was stopped. Lower the learning rate (lr_range_test suggests one), "
            "shorten the warm-up's peak, or check the data and labels."
        )
        if self.on_collapse == "raise":
            raise RuntimeError(message)
        warnings.warn(message, TrainingCollapseWarning, stacklevel=2)


def _ends_in_probabilities(model) -> bool:
    """True when the model's last layer applies a sigmoid or a softmax."""
    last = model.layers[-1] if getattr(model, "layers", None) else None
    activation = getattr(last, "activation", None)
    return activation in (keras.activations.sigmoid, keras.activations.softmax) or (
        getattr(activation, "__name__", "") in ("sigmoid", "softmax")
    )


def predicted_classes(outputs, logits: bool = False) -> np.ndarray | None:
    """Class indices from a model's outputs, or None if they are not finite.

    One output unit is a binary classifier: class 1 above 0.5 for a
    probability, above 0 for a logit (``logits=True``).
    """
    outputs = np.asarray(keras.ops.convert_to_numpy(outputs), dtype="float64")
    if outputs.ndim == 1:
        outputs = outputs[:, None]
    if not np.all(np.isfinite(outputs)):
        return None
    if outputs.shape[-1] == 1:
        threshold = 0.0 if logits else 0.5
        return (outputs[:, 0] > threshold).astype("int64")
    return outputs.argmax(axis=-1).astype("int64")


def _finite(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return True


def _images_and_labels(images, labels):
    if images is None:
        if labels is not None:
            raise ValueError("`labels` were given without `images` to predict.")
        return None, None
    if isinstance(images, (tuple, list)):
        raise TypeError(
            "`images` must be an array or a dataset; pass the labels as `labels=`. "
            f"Received: images of type {type(images).__name__}."
        )
    if labels is None and not isinstance(images, np.ndarray) and not keras.ops.is_tensor(
        images
    ):
        # A dataset of (images, labels) batches: read its labels once.
        collected: list[np.ndarray] = []
        for element in images:
            if isinstance(element, (tuple, list)) and len(element) >= 2:
                collected.append(keras.ops.convert_to_numpy(element[1]))
            else:
                collected = []
                break
        if collected:
            labels = np.concatenate([np.reshape(c, (len(c), -1)) for c in collected])
    if labels is not None:
        labels = np.asarray(keras.ops.convert_to_numpy(labels))
        if labels.ndim == 2 and labels.shape[1] > 1:
            labels = labels.argmax(axis=1)
        labels = np.rint(labels.reshape(len(labels))).astype("int64")
        if labels.min(initial=0) < 0:
            raise ValueError(
                "`labels` must be class indices >= 0 or one-hot rows. "
                f"Received: labels with minimum {labels.min()}."
            )
    return images, labels
