"""The pictures a model gets wrong: finding them (`find_misclassified`) and drawing them."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import keras
import numpy as np

from keras_smalldata import _backend
from keras_smalldata._arguments import check_bool, check_positive_int
from keras_smalldata._figures import new_figure
from keras_smalldata._models import check_model
from keras_smalldata.viz._outputs import ClassPredictor, check_class_names, class_name
from keras_smalldata.viz._recording import as_batch
from keras_smalldata.viz.cam import class_activation_maps
from keras_smalldata.viz.overlay import overlay_heatmap, to_display_image


@dataclasses.dataclass
class Misclassified:
    """The mistakes of a model on a dataset.

    Attributes:
        images: The first ``max_images`` misclassified pictures, as given
            (batch, height, width, channels).
        true_class: Their true classes, int64 (batch,).
        predicted: The classes the model predicted, int64 (batch,).
        probability: The probability of the predicted class, float64 (batch,):
            the model's output when it outputs probabilities, the softmax
            (one unit: sigmoid) of its output when it outputs logits.
        index: Their positions in the dataset, int64 (batch,).
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


def _labels_to_classes(labels, name="labels") -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] > 1:
        return np.argmax(labels, axis=1).astype("int64")  # one-hot
    if labels.ndim == 2:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(
            f"{name} must be class indices (batch,), binary labels (batch, 1) or "
            f"one-hot rows (batch, classes), got shape {labels.shape}."
        )
    return np.round(labels.astype("float64")).astype("int64")


def _batches(dataset, batch_size: int):
    """Yields (images, labels) batches from a dataset, an iterable of batches or an (x, y) pair."""
    if (
        isinstance(dataset, tuple)
        and len(dataset) == 2
        and not _backend.is_tf_dataset(dataset)
    ):
        images, labels = dataset
        if not keras.ops.is_tensor(images):
            images = np.asarray(images)
        for start in range(0, len(images), batch_size):
            yield (
                images[start : start + batch_size],
                np.asarray(labels)[start : start + batch_size],
            )
        return
    if _backend.is_tf_dataset(dataset):
        tf = _backend.tensorflow()
        if dataset.cardinality() == tf.data.INFINITE_CARDINALITY:
            raise ValueError(
                "dataset is infinite (e.g. .repeat() without a count); pass a finite "
                "dataset such as the test split."
            )
    try:
        iterator = iter(dataset)
    except TypeError as error:
        raise TypeError(
            "dataset must be a tf.data.Dataset or an iterable of (images, labels) "
            f"batches, or an (images, labels) tuple of arrays; got {type(dataset).__name__}."
        ) from error
    for element in iterator:
        if not isinstance(element, (tuple, list)) or len(element) < 2:
            raise ValueError(
                "dataset must yield (images, labels) pairs (labels are needed to find "
                f"mistakes), got an element of type {type(element).__name__}."
            )
        images, labels = element[0], element[1]
        if len(np.shape(images)) == 3:  # an unbatched dataset
            images, labels = np.asarray(images)[None], np.asarray(labels)[None]
        yield images, labels


def find_misclassified(
    model: keras.Model,
    dataset,
    max_images: int = 16,
    batch_size: int = 32,
) -> Misclassified:
    """Predicts a whole dataset and returns the pictures the model gets wrong.

    Every picture is predicted in inference mode, so the counts cover the
    whole dataset; the first ``max_images`` mistakes are kept with their
    true and predicted classes and the probability of the predicted class.

    Args:
        model: A Keras classifier: softmax (or logits) over classes, or one
            sigmoid unit (classes 0 and 1).
        dataset: A finite `tf.data.Dataset` of (images, labels) batches (e.g.
            from `keras.utils.image_dataset_from_directory`, shuffle=False
            to keep the order), any iterable of such batches, or an
            ``(images, labels)`` tuple of arrays. Labels may be class
            indices, binary 0/1 (also (n, 1) floats) or one-hot rows.
        max_images: How many mistakes to keep at most.
        batch_size: Batch size for arrays given as an (images, labels) tuple.

    Returns:
        A `Misclassified` with the kept pictures, their classes and
        probabilities, and the counts over the whole dataset.

    Example:

    ```python
    mistakes = find_misclassified(model, test_ds)
    print(f"{mistakes.count} of {mistakes.total} wrong")
    mistakes.true_class, mistakes.predicted, mistakes.probability
    ```
    """
    check_model(model)
    check_positive_int("max_images", max_images)
    check_positive_int("batch_size", batch_size)
    predictor = ClassPredictor(model)
    seen = 0
    wrong = 0
    picture_shape = (0, 0, 0)
    kept = {key: [] for key in ("images", "true", "predicted", "probability", "index")}
    for images, labels in _batches(dataset, batch_size):
        batch, _ = as_batch(images)
        truth = _labels_to_classes(
            keras.ops.convert_to_numpy(labels)
            if keras.ops.is_tensor(labels)
            else labels
        )
        if len(truth) != int(batch.shape[0]):
            raise ValueError(
                f"a batch has {int(batch.shape[0])} pictures but {len(truth)} labels."
            )
        picture_shape = tuple(batch.shape[1:])
        predicted, table = predictor(batch)
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
    columns = min(images_per_row, kept)
    rows = -(-kept // columns)
    figure = new_figure(
        figsize=figsize or (2.6 * columns, 2.8 * rows + 0.4), layout="constrained"
    )
    axes = figure.subplots(rows, columns, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i >= kept:
            continue
        shown = to_display_image(mistakes.images[i], value_range)
        if heatmaps is not None:
            shown = overlay_heatmap(shown, heatmaps[i])
        ax.imshow(shown)
        ax.set_title(
            f"true: {class_name(int(mistakes.true_class[i]), class_names)}\n"
            f"pred: {class_name(int(mistakes.predicted[i]), class_names)} "
            f"({mistakes.probability[i]:.2f})",
            fontsize=9,
        )
    summary = f"misclassified: {mistakes.count} of {mistakes.total} pictures"
    if mistakes.count > kept:
        summary += f" (first {kept} shown)"
    figure.suptitle(summary)
    return figure


def plot_misclassified(
    model: keras.Model,
    dataset,
    class_names: Sequence[str] | None = None,
    max_images: int = 16,
    images_per_row: int = 4,
    show_heatmap: bool = False,
    layer: str | keras.layers.Layer | None = None,
    value_range: tuple[float, float] | None = None,
    batch_size: int = 32,
    figsize: tuple[float, float] | None = None,
):
    """Shows the pictures the model gets wrong, with true and predicted classes.

    The mistakes are found with `find_misclassified` (the whole dataset is
    predicted, so the counts are exact); the first ``max_images`` are drawn,
    each titled with its true class, the predicted class and its probability.
    With ``show_heatmap=True`` each shows the Grad-CAM overlay for the
    predicted class: what the model looked at when it was wrong.

    Args:
        model: A Keras classifier (see `find_misclassified`).
        dataset: The pictures and labels (see `find_misclassified`).
        class_names: Names of the classes, e.g. ``test_ds.class_names``.
        max_images: How many mistakes to draw at most.
        images_per_row: Pictures per row.
        show_heatmap: Overlay each picture's Grad-CAM for its predicted class.
        layer: The Grad-CAM layer when ``show_heatmap`` (None: automatic).
        value_range: (low, high) of the pictures for display; None guesses.
        batch_size: Batch size for arrays given as an (images, labels) tuple.
        figsize: Figure size; default 2.6 inches per picture.

    Returns:
        A `matplotlib.figure.Figure` whose title says how many of how many
        pictures were misclassified. When there is no mistake, the Figure
        says so.

    Example:

    ```python
    test_ds = keras.utils.image_dataset_from_directory(
        "data/test", image_size=(180, 180), shuffle=False)
    fig = plot_misclassified(model, test_ds, class_names=test_ds.class_names)
    ```
    """
    class_names = check_class_names(class_names)
    check_positive_int("images_per_row", images_per_row)
    check_bool("show_heatmap", show_heatmap)
    mistakes = find_misclassified(model, dataset, max_images, batch_size)
    heatmaps = None
    if show_heatmap and len(mistakes.index):
        heatmaps = class_activation_maps(
            model, mistakes.images, class_index=mistakes.predicted, layer=layer
        ).heatmaps
    return _draw_misclassified(
        mistakes, class_names, images_per_row, heatmaps, value_range, figsize
    )
