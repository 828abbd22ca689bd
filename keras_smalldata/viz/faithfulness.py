"""How faithful a heatmap is: does the model still see the class in the highlighted part?"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from keras_smalldata._arguments import check_choice, check_positive_int
from keras_smalldata._models import check_model
from keras_smalldata._types import ArrayLike
from keras_smalldata.viz._outputs import (
    ClassPredictor,
    check_class_range,
    requested_classes,
)
from keras_smalldata.viz._recording import as_batch
from keras_smalldata.viz.cam import METHODS, class_activation_maps


def _class_probabilities(predictor, batch, batch_size):
    """Predicted classes (batch,) and per-class probabilities (batch, classes)."""
    predicted, tables = [], []
    for start in range(0, int(batch.shape[0]), batch_size):
        chunk_predicted, table = predictor(batch[start : start + batch_size])
        predicted.append(chunk_predicted)
        tables.append(table)
    return np.concatenate(predicted), np.concatenate(tables)


def cam_faithfulness(
    model: keras.Model,
    images: ArrayLike,
    heatmaps: ArrayLike | None = None,
    *,
    class_index: int | Sequence[int] | None = None,
    layer: str | keras.layers.Layer | None = None,
    method: str = "gradcam",
    batch_size: int = 32,
) -> dict[str, float]:
    """Average Drop and Increase in Confidence of class activation maps.

    The two metrics of Chattopadhyay et al. (2018, Grad-CAM++): each picture
    is multiplied by its heatmap, and the model's probability for the
    explained class on that masked picture, O, is compared with the one on
    the full picture, Y. Average Drop is ``100 * mean(max(0, Y - O) / Y)``
    (lower is better); Increase in Confidence is the percentage of pictures
    with O > Y (higher is better).

    Args:
        model: A Keras classifier (see `class_activation_maps`).
        images: A batch of pictures as the model expects them.
        heatmaps: Maps to evaluate, (batch, height, width) in [0, 1] at the
            pictures' resolution; None computes them with ``method``.
        class_index: The explained classes (None: the predicted ones).
        layer: Feature map for the computed heatmaps (None: automatic).
        method: ``"gradcam"``, ``"gradcam++"`` or ``"scorecam"``.
        batch_size: Pictures per forward pass.

    Returns:
        A dict with ``"average_drop"`` and ``"increase_in_confidence"`` (both
        in percent) and ``"count"`` (number of pictures).

    Raises:
        ValueError: For heatmaps of another shape than the pictures', or a
            class the model does not have.

    Example:

    ```python
    scores = cam_faithfulness(model, images, method="gradcam")
    scores["average_drop"], scores["increase_in_confidence"]  # percent
    ```
    """
    check_model(model)
    check_choice("method", method, METHODS)
    check_positive_int("batch_size", batch_size)
    batch, _ = as_batch(images)
    total = int(batch.shape[0])
    predictor = ClassPredictor(model)
    if heatmaps is None:
        maps = class_activation_maps(
            model,
            batch,
            class_index,
            layer=layer,
            method=method,
            resize=True,
            batch_size=batch_size,
            verbose=0,
        )
        heatmaps, classes, before = (
            maps.heatmaps,
            maps.class_index,
            maps.class_probability,
        )
    else:
        heatmaps = np.asarray(heatmaps, dtype="float32")
        if heatmaps.ndim == 2:
            heatmaps = heatmaps[None]
        if heatmaps.shape != (total,) + tuple(batch.shape[1:3]):
            raise ValueError(
                f"`heatmaps` must have shape {(total,) + tuple(batch.shape[1:3])} (one "
                "map per picture, at the pictures' resolution). Received: heatmaps of "
                f"shape {heatmaps.shape}."
            )
        predicted, table = _class_probabilities(predictor, batch, batch_size)
        requested = requested_classes(class_index, total)
        check_class_range(requested, table.shape[1])
        classes = np.where(requested < 0, predicted, requested).astype("int64")
        before = table[np.arange(total), classes]
    masks = np.clip(np.nan_to_num(heatmaps), 0.0, 1.0)[..., None]
    masked = keras.ops.convert_to_numpy(batch) * masks
    _, after_table = _class_probabilities(
        predictor, keras.ops.convert_to_tensor(masked, dtype=batch.dtype), batch_size
    )
    after = after_table[np.arange(total), classes]
    before = np.asarray(before, dtype="float64")
    drop = np.maximum(0.0, before - after) / np.maximum(before, 1e-12)
    return {
        "average_drop": float(100.0 * drop.mean()),
        "increase_in_confidence": float(100.0 * np.mean(after > before)),
        "count": total,
    }
