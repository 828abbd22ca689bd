"""The pictures a model gets wrong: finding them (`find_misclassified`) and drawing them.

Also the pieces `interpret` shares: the loop that predicts a labelled dataset
(`predicted_batches`), the one check of its labels against the model's classes
(`label_classes`), and the grid of titled pictures (`picture_grid`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from keras_smalldata import _backend
from keras_smalldata._arguments import check_positive_int
from keras_smalldata._figures import new_figure
from keras_smalldata._models import check_model
from keras_smalldata._types import Data
from keras_smalldata.viz._outputs import (
    ClassPredictor,
    check_class_names,
    class_name,
    inspect_model,
)
from keras_smalldata.viz._recording import as_batch
from keras_smalldata.viz.cam import ClassActivationMaps
from keras_smalldata.viz.overlay import overlay_heatmap, to_display_image

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclasses.dataclass
class Misclassified:
    """The mistakes of a model on labelled data, made by `find_misclassified`.

    Attributes:
        images: The first ``max_images`` misclassified pictures, as given
            (batch, height, width, channels).
        true_class: Their true classes, int64 (batch,).
        predicted: The classes the model predicted, int64 (batch,).
        probability: The probability of the predicted class, float64 (batch,):
            the model's output when it outputs probabilities, the softmax
            (one unit: sigmoid) of its output when it outputs logits.
        index: Their positions in the data, int64 (batch,).
        count: How many pictures were misclassified in all (may exceed the
            number kept).
        total: How many pictures were checked.
    """

    images: np.ndarray
    true_class: np.ndarray
    predicted: np.ndarray
    probability: np.ndarray
    index: np.ndarray
    count: int
    total: int

    @property
    def error_rate(self) -> float:
        """``count / total`` (0.0 for an empty dataset)."""
        return self.count / self.total if self.total else 0.0


def _accepted_labels(units: int) -> str:
    """What labels a model with ``units`` output units accepts, for messages."""
    if units == 1:
        return (
            "it has one sigmoid unit, so 2 classes, and labels must be 0 or 1 "
            "(ints, or floats of shape (batch, 1) as label_mode='binary' gives) or "
            "one-hot rows of width 2"
        )
    return (
        f"it has {units} classes ({units} output units), so labels must be class "
        f"indices 0 to {units - 1} or one-hot rows of width {units}"
    )


def _preview(labels: np.ndarray) -> str:
    values = np.ravel(labels)
    shown = ", ".join(f"{v:g}" for v in values[:8].tolist())
    return f"[{shown}{', ...' if len(values) > 8 else ''}]"


def label_classes(labels, units: int, first: int = 0) -> np.ndarray:
    """The class of each label, int64 (batch,), refusing labels that are not the model's classes.

    The one check of labels for `find_misclassified` and `interpret`.

    Args:
        labels: Class indices (batch,), binary labels (batch, 1) or one-hot
            rows (batch, classes); a NumPy array, a list or a tensor.
        units: The model's output units (1 for one sigmoid unit: classes 0
            and 1).
        first: Position in the dataset of the batch's first picture, for
            the message.

    Raises:
        ValueError: For labels outside the model's classes (e.g. 7 or -1 for
            a 3-class softmax, 2 for one sigmoid unit), labels that are not
            whole numbers, one-hot rows of another width than the model's
            classes or that do not sum to 1, and labels of another shape.
        TypeError: For labels that are not numbers.
    """
    if keras.ops.is_tensor(labels):
        labels = keras.ops.convert_to_numpy(labels)
    labels = np.asarray(labels)
    if not (np.issubdtype(labels.dtype, np.number) or labels.dtype == bool):
        raise TypeError(
            "labels must be numbers (class indices, binary 0/1 or one-hot rows), got "
            f"an array of dtype {labels.dtype}: {np.ravel(labels)[:5].tolist()!r}."
        )
    classes = max(units, 2)
    if labels.ndim == 2 and labels.shape[1] > 1:  # one-hot (or smoothed) rows
        if labels.shape[1] != classes:
            raise ValueError(
                f"Labels are one-hot rows of width {labels.shape[1]}, but "
                f"{_accepted_labels(units)}. Received: labels of shape "
                f"{labels.shape}."
            )
        sums = labels.astype("float64").sum(axis=1)
        wrong = np.flatnonzero(~np.isclose(sums, 1.0, atol=1e-3))
        if wrong.size:
            raise ValueError(
                f"Labels look like one-hot rows, but row {first + int(wrong[0])} of "
                f"the dataset sums to {sums[wrong[0]]:g}, not 1: "
                f"{labels[wrong[0]].tolist()}. Pass class indices or one-hot rows."
            )
        return np.argmax(labels, axis=1).astype("int64")
    if labels.ndim == 2:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(
            "labels must be class indices (batch,), binary labels (batch, 1) or "
            f"one-hot rows (batch, classes), got shape {labels.shape}."
        )
    values = labels.astype("float64")
    outside = ~np.isfinite(values) | (values != np.round(values))
    outside |= (values < 0) | (values > classes - 1)
    if outside.any():
        bad = np.unique(labels[outside])
        shown = " and ".join(f"{v:g}" for v in bad[:5].tolist())
        if len(bad) > 5:
            shown = ", ".join(f"{v:g}" for v in bad[:5].tolist())
            shown += f" and {len(bad) - 5} other values"
        position = first + int(np.flatnonzero(outside)[0])
        hint = (
            " A model for more classes needs one output unit per class, e.g. "
            "Dense(number_of_classes, activation='softmax')."
            if np.any(values[np.isfinite(values)] > classes - 1)
            else ""
        )
        raise ValueError(
            f"Label{'s' if len(bad) > 1 else ''} {shown} "
            f"{'are' if len(bad) > 1 else 'is'} not "
            f"{'classes' if len(bad) > 1 else 'a class'} of the model (first at "
            f"picture {position} of the dataset): {_accepted_labels(units)}.{hint} "
            f"Received: labels={_preview(labels)}."
        )
    return values.astype("int64")


def is_array_pair(data) -> bool:
    """True for an (images, labels) tuple of arrays (rather than a dataset of batches)."""
    return isinstance(data, tuple) and len(data) == 2 and not _backend.is_tf_dataset(data)


def _batches(data, batch_size: int):
    """Yields (images, labels) batches from a dataset, an iterable of batches or an (x, y) pair."""
    if is_array_pair(data):
        images, labels = data
        if not keras.ops.is_tensor(images):
            images = np.asarray(images)
        for start in range(0, len(images), batch_size):
            yield (
                images[start : start + batch_size],
                np.asarray(labels)[start : start + batch_size],
            )
        return
    if _backend.is_tf_dataset(data):
        tf = _backend.tensorflow()
        if data.cardinality() == tf.data.INFINITE_CARDINALITY:
            raise ValueError(
                "`data` is an infinite dataset (e.g. .repeat() without a count); pass "
                "a finite dataset such as the test split."
            )
    try:
        iterator = iter(data)
    except TypeError as error:
        raise TypeError(
            "`data` must be a tf.data.Dataset or an iterable of (images, labels) "
            f"batches, or an (images, labels) tuple of arrays; got {type(data).__name__}."
        ) from error
    for element in iterator:
        if not isinstance(element, (tuple, list)) or len(element) < 2:
            raise ValueError(
                "`data` must yield (images, labels) pairs (labels are needed to find "
                f"mistakes), got an element of type {type(element).__name__}."
            )
        images, labels = element[0], element[1]
        if len(np.shape(images)) == 3:  # an unbatched dataset
            images, labels = np.asarray(images)[None], np.asarray(labels)[None]
        yield images, labels


def predicted_batches(model: keras.Model, data, batch_size: int):
    """Predicts labelled data batch by batch, checking its labels against the model.

    The one prediction loop of `find_misclassified` and `interpret`.

    Yields:
        ``(pictures, truth, predicted, table)`` per batch: the pictures as a
        float tensor with a batch axis, their true classes and the predicted
        classes (int64 (batch,)), and the per-class probabilities (float64
        (batch, classes); one sigmoid unit p gives two columns (1 - p, p)),
        as `ClassPredictor` reads them.
    """
    predictor = ClassPredictor(model)
    seen = 0
    for images, labels in _batches(data, batch_size):
        batch, _ = as_batch(images)
        if keras.ops.is_tensor(labels):
            labels = keras.ops.convert_to_numpy(labels)
        labels = np.asarray(labels)
        count = int(batch.shape[0])
        if labels.ndim == 0 or len(labels) != count:
            raise ValueError(
                f"a batch has {count} pictures but labels of shape {labels.shape}."
            )
        predicted, table = predictor(batch)
        units = inspect_model(model, batch, signature=predictor.signature).require_units()
        truth = label_classes(labels, units, first=seen)
        yield batch, truth, predicted, table
        seen += count


def find_misclassified(
    model: keras.Model,
    data: Data,
    *,
    max_images: int = 16,
    batch_size: int = 32,
) -> Misclassified:
    """Predicts labelled data and returns the pictures the model gets wrong.

    Every picture is predicted in inference mode, so the counts cover all of
    ``data``; the first ``max_images`` mistakes are kept with their true and
    predicted classes and the probability of the predicted class.

    Args:
        model: A Keras classifier: softmax (or logits) over classes, or one
            sigmoid unit (classes 0 and 1).
        data: A finite `tf.data.Dataset` of (images, labels) batches (e.g.
            from `keras.utils.image_dataset_from_directory` with
            ``shuffle=False``), any iterable of such batches, or an
            ``(images, labels)`` tuple of arrays. Labels are class indices,
            binary 0/1 or one-hot rows.
        max_images: How many mistakes to keep at most.
        batch_size: Batch size for arrays given as an (images, labels) tuple.

    Returns:
        A `Misclassified` with the kept pictures, their classes and
        probabilities, and the counts over all of ``data``.

    Raises:
        ValueError: For a label that is not a class of the model (e.g. 7 for
            a 3-class softmax, 2 for one sigmoid unit), or an infinite
            dataset.

    Example:

    ```python
    mistakes = find_misclassified(model, test_ds)
    print(f"{mistakes.count} of {mistakes.total} wrong")
    ```
    """
    check_model(model)
    check_positive_int("max_images", max_images)
    check_positive_int("batch_size", batch_size)
    seen = 0
    wrong = 0
    picture_shape = (0, 0, 0)
    kept: dict[str, list[Any]] = {
        key: [] for key in ("images", "true", "predicted", "probability", "index")
    }
    for batch, truth, predicted, table in predicted_batches(model, data, batch_size):
        picture_shape = tuple(batch.shape[1:])
        mistakes = np.flatnonzero(predicted != truth)
        room = max_images - len(kept["index"])
        if room > 0 and len(mistakes):
            pictures = keras.ops.convert_to_numpy(batch)
            for index in mistakes[:room]:
                kept["images"].append(pictures[index])
                kept["true"].append(int(truth[index]))
                kept["predicted"].append(int(predicted[index]))
                kept["probability"].append(float(table[index, predicted[index]]))
                kept["index"].append(seen + int(index))
        seen += len(truth)
        wrong += len(mistakes)
    images = (
        np.stack(kept["images"])
        if kept["images"]
        else np.zeros((0,) + picture_shape, dtype="float32")
    )
    return Misclassified(
        images=images,
        true_class=np.asarray(kept["true"], dtype="int64"),
        predicted=np.asarray(kept["predicted"], dtype="int64"),
        probability=np.asarray(kept["probability"], dtype="float64"),
        index=np.asarray(kept["index"], dtype="int64"),
        count=wrong,
        total=seen,
    )


def picture_grid(
    images: np.ndarray,
    titles: Sequence[str],
    heatmaps: np.ndarray | None,
    images_per_row: int,
    value_range,
    figsize,
    alpha: float = 0.4,
):
    """A Figure with one titled panel per picture, each under its heatmap overlay if given."""
    count = len(images)
    columns = min(images_per_row, count)
    rows = -(-count // columns)
    figure = new_figure(
        figsize=figsize or (2.6 * columns, 2.8 * rows + 0.4), layout="constrained"
    )
    axes = figure.subplots(rows, columns, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i >= count:
            continue
        shown = to_display_image(images[i], value_range)
        if heatmaps is not None:
            shown = overlay_heatmap(shown, heatmaps[i], alpha=alpha)
        ax.imshow(shown)
        ax.set_title(titles[i], fontsize=9)
    return figure


def _draw_misclassified(
    mistakes: Misclassified,
    class_names,
    images_per_row: int,
    heatmaps,
    value_range,
    figsize,
):
    kept = len(mistakes.index)
    if not kept:
        figure = new_figure(figsize=figsize or (4.0, 1.5), layout="constrained")
        ax = figure.add_subplot()
        ax.text(
            0.5,
            0.5,
            f"No misclassified pictures ({mistakes.total} checked).",
            ha="center",
            va="center",
        )
        ax.set_axis_off()
        return figure
    titles = [
        f"true: {class_name(int(mistakes.true_class[i]), class_names)}\n"
        f"pred: {class_name(int(mistakes.predicted[i]), class_names)} "
        f"({mistakes.probability[i]:.2f})"
        for i in range(kept)
    ]
    figure = picture_grid(
        mistakes.images, titles, heatmaps, images_per_row, value_range, figsize
    )
    summary = f"misclassified: {mistakes.count} of {mistakes.total} pictures"
    if mistakes.count > kept:
        summary += f" (first {kept} shown)"
    figure.suptitle(summary)
    return figure


def plot_misclassified(
    misclassified: Misclassified,
    *,
    class_names: Sequence[str] | None = None,
    images_per_row: int = 4,
    maps: ClassActivationMaps | None = None,
    value_range: tuple[float, float] | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Draws the pictures a model gets wrong, with their true and predicted classes.

    Each picture of ``misclassified`` is titled with its true class, the
    predicted class and its probability; the figure's title says how many
    of how many pictures were wrong. Nothing is computed: the mistakes come
    from `find_misclassified`, the optional overlays from
    `class_activation_maps`.

    Args:
        misclassified: The `Misclassified` returned by `find_misclassified`.
        class_names: Names of the classes, e.g. ``test_ds.class_names``.
        images_per_row: Pictures per row.
        maps: Optional `ClassActivationMaps` of ``misclassified.images``,
            drawn over the pictures.
        value_range: (low, high) of the pictures for display; None guesses
            (see `overlay_heatmap`).
        figsize: Figure size; default 2.6 inches per picture.

    Returns:
        A `matplotlib.figure.Figure`; when there is no mistake, it says so.

    Raises:
        TypeError: If ``misclassified`` is not a `Misclassified` or ``maps``
            not a `ClassActivationMaps`.
        ValueError: If ``maps`` holds another number of maps than
            ``misclassified`` holds pictures.

    Example:

    ```python
    mistakes = find_misclassified(model, test_ds)
    maps = class_activation_maps(model, mistakes.images, mistakes.predicted)
    fig = plot_misclassified(mistakes, class_names=test_ds.class_names, maps=maps)
    ```
    """
    if not isinstance(misclassified, Misclassified):
        raise TypeError(
            "`misclassified` must be the Misclassified returned by "
            "find_misclassified(model, data). Received: misclassified of type "
            f"{type(misclassified).__name__}."
        )
    class_names = check_class_names(class_names)
    check_positive_int("images_per_row", images_per_row)
    heatmaps = None
    if maps is not None:
        if not isinstance(maps, ClassActivationMaps):
            raise TypeError(
                "`maps` must be None or the ClassActivationMaps of "
                "misclassified.images. Received: maps of type "
                f"{type(maps).__name__}."
            )
        if len(maps.heatmaps) != len(misclassified.images):
            raise ValueError(
                f"`maps` has {len(maps.heatmaps)} heatmaps but `misclassified` holds "
                f"{len(misclassified.images)} pictures: pass "
                "class_activation_maps(model, misclassified.images, ...)."
            )
        heatmaps = maps.heatmaps
    return _draw_misclassified(
        misclassified, class_names, images_per_row, heatmaps, value_range, figsize
    )
