"""Whether a metric gets better going down ("min") or up ("max")."""

from __future__ import annotations

import re

import keras

# Keras' metric classes by the direction in which they get better ("max" for
# accuracy-like, "min" for error-like); subclasses follow their class. The
# counts (TruePositives...), Mean and Sum have no direction.
_DIRECTIONS = {
    "max": (
        "Accuracy", "BinaryAccuracy", "CategoricalAccuracy", "SparseCategoricalAccuracy",
        "TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy", "AUC", "Precision",
        "Recall", "PrecisionAtRecall", "RecallAtPrecision", "SensitivityAtSpecificity",
        "SpecificityAtSensitivity", "FBetaScore", "IoU", "R2Score", "CosineSimilarity",
        "PearsonCorrelation", "ConcordanceCorrelation",
    ),
    "min": (
        "BinaryCrossentropy", "CategoricalCrossentropy", "SparseCategoricalCrossentropy",
        "MeanSquaredError", "MeanAbsoluteError", "MeanAbsolutePercentageError",
        "MeanSquaredLogarithmicError", "RootMeanSquaredError", "LogCoshError", "Hinge",
        "SquaredHinge", "CategoricalHinge", "KLDivergence", "Poisson",
    ),
}

# Name parts that mean "lower is better" / "higher is better". Checked in this
# order on the tokens of the name, so "loss" wins over anything else.
_MIN_TOKENS = (
    "loss", "error", "mae", "mse", "rmse", "mape", "msle", "crossentropy",
    "hinge", "poisson", "kld", "divergence", "logcosh", "huber",
)
_MAX_TOKENS = (
    "acc", "accuracy", "auc", "precision", "recall", "f1", "fbeta", "iou",
    "r2", "similarity", "dice", "sensitivity", "specificity",
)


def metric_direction(name: str, model=None) -> str | None:
    """Returns "min" if `name` is loss-like, "max" if accuracy-like, else None.

    When `model` is given, its compiled metrics are asked first, as Keras'
    `MonitorCallback` does: a metric of a Keras class (`keras.metrics.AUC`,
    a subclass of it...) has that class's direction whatever its name.
    Otherwise the name decides: anything containing "loss", "error",
    "mse"... is "min"; "accuracy", "auc", "precision"... is "max". A `val_`
    prefix and a `_smoothed` suffix are ignored.
    """
    name = name.removeprefix("val_").removesuffix("_smoothed")
    declared = _declared_direction(name, model)
    if declared is not None:
        return declared
    lowered = name.lower()
    if "loss" in lowered:
        return "min"
    tokens = [t for t in re.split(r"[^a-z0-9]+", lowered) if t]
    if lowered in ("false_positives", "false_negatives"):
        return "min"
    for token in tokens:
        if token in _MIN_TOKENS:
            return "min"
    for token in tokens:
        if token in _MAX_TOKENS or token.endswith("accuracy"):
            return "max"
    return None


def _declared_direction(name: str, model) -> str | None:
    if model is None:
        return None
    try:
        metrics = list(model.metrics)
    except Exception:
        return None
    found: list[keras.metrics.Metric] = []
    for metric in metrics:
        found.extend(getattr(metric, "metrics", None) or [metric])
    for metric in found:
        if getattr(metric, "name", None) == name:
            for direction, class_names in _DIRECTIONS.items():
                classes = tuple(
                    getattr(keras.metrics, n) for n in class_names if hasattr(keras.metrics, n)
                )
                if isinstance(metric, classes):
                    return direction
    return None
