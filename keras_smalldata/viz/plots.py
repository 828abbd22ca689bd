"""Figures: a picture with its class activation map, and the pictures a model gets wrong."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from keras_smalldata import _backend
from keras_smalldata._arguments import check_positive_int
from keras_smalldata.viz._layers import _check_model
from keras_smalldata.viz._recording import as_batch
from keras_smalldata.viz.cam import ClassPredictor, class_activation_maps
from keras_smalldata.viz.overlay import (
    colorize_heatmap,
    overlay_heatmap,
    to_display_image,
)

_METHOD_TITLES = {
    "gradcam": "Grad-CAM",
    "gradcam++": "Grad-CAM++",
    "scorecam": "Score-CAM",
}


def _class_name(index: int, class_names) -> str:
    if class_names is not None and 0 <= index < len(class_names):
        return str(class_names[index])
    return f"class {index}"


def _check_class_names(class_names):
    if class_names is None:
        return None
    if isinstance(class_names, str):
        raise TypeError(
            f"class_names must be a list of strings, got the string {class_names!r}."
        )
    return [str(name) for name in class_names]


def plot_grad_cam(
    model: keras.Model,
    images,
    class_index: int | Sequence[int] | None = None,
    layer: str | keras.layers.Layer | None = None,
    method: str = "gradcam",
    class_names: Sequence[str] | None = None,
    alpha: float = 0.4,
    cmap: str = "jet",
    value_range: tuple[float, float] | None = None,
    figsize: tuple[float, float] | None = None,
):
    """Shows each picture, its class activation map and their overlay.

    One row per picture: the picture titled with the predicted class and its
    probability, the heatmap titled with the class it explains and the
    layer, and the heatmap blended over the picture (`overlay_heatmap`).

    Args:
        model: A Keras model (see `grad_cam`).
        images: One picture or a batch, as the model expects them.
        class_index: The class to explain; None for each picture's predicted
            class (see `grad_cam`).
        layer: The feature map to use; None finds the last conv block.
        method: ``"gradcam"``, ``"gradcam++"`` or ``"scorecam"``.
        class_names: Names of the classes, e.g. ``train_ds.class_names``.
        alpha: Weight of the heatmap in the overlay.
        cmap: A matplotlib colormap.
        value_range: (low, high) of the pictures for display; None guesses
            (see `overlay_heatmap`).
        figsize: Figure size; default 3 inches per panel.

    Returns:
        A `matplotlib.figure.Figure`.

    Example:

    ```python
    fig = plot_grad_cam(model, images[:2], class_names=["cat", "dog"])
    fig.savefig("gradcam.png")
    ```
    """
    from matplotlib.figure import Figure

    class_names = _check_class_names(class_names)
    batch, _ = as_batch(images)
    maps = class_activation_maps(model, batch, class_index, layer, method)
    pictures = keras.ops.convert_to_numpy(batch)
    rows = pictures.shape[0]
    figure = Figure(figsize=figsize or (9.0, 3.2 * rows), layout="constrained")
    axes = figure.subplots(rows, 3, squeeze=False)
    for i in range(rows):
        shown = to_display_image(pictures[i], value_range)
        predicted = int(maps.predicted[i])
        explained = int(maps.class_index[i])
        axes[i, 0].imshow(shown)
        axes[i, 0].set_title(
            f"predicted: {_class_name(predicted, class_names)} ({maps.probability[i]:.2f})"
        )
        axes[i, 1].imshow(colorize_heatmap(maps.heatmaps[i], cmap))
        axes[i, 1].set_title(
            f"{_METHOD_TITLES[method]} for {_class_name(explained, class_names)}\n{maps.layer}",
            fontsize=9,
        )
        axes[i, 2].imshow(
            overlay_heatmap(shown, maps.heatmaps[i], alpha=alpha, cmap=cmap)
        )
        axes[i, 2].set_title("overlay")
        for ax in axes[i]:
            ax.set_axis_off()
    return figure


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

    The whole dataset is predicted (inference mode) to count the mistakes;
    the first ``max_images`` are drawn, each titled with its true class, the
    predicted class and the model's probability for it. With
    ``show_heatmap=True`` each shows the Grad-CAM overlay for the predicted
    class: what the model looked at when it was wrong.

    Args:
        model: A Keras classifier: softmax (or logits) over classes, or one
            sigmoid unit (classes 0 and 1).
        dataset: A finite `tf.data.Dataset` of (images, labels) batches (e.g.
            from `keras.utils.image_dataset_from_directory`, shuffle=False
            to keep the order), any iterable of such batches, or an
            ``(images, labels)`` tuple of arrays. Labels may be class
            indices, binary 0/1 (also (n, 1) floats) or one-hot rows.
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
    from matplotlib.figure import Figure

    _check_model(model)
    class_names = _check_class_names(class_names)
    for name, value in (
        ("max_images", max_images),
        ("images_per_row", images_per_row),
        ("batch_size", batch_size),
    ):
        check_positive_int(name, value)
    predictor = ClassPredictor(model)
    seen = 0
    wrong = 0
    kept_images, kept_true, kept_pred, kept_prob = [], [], [], []
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
        predicted, table = predictor(batch)
        mistakes = np.flatnonzero(predicted != truth)
        seen += len(truth)
        wrong += len(mistakes)
        room = max_images - len(kept_images)
        if room > 0 and len(mistakes):
            pictures = keras.ops.convert_to_numpy(batch)
            for index in mistakes[:room]:
                kept_images.append(pictures[index])
                kept_true.append(int(truth[index]))
                kept_pred.append(int(predicted[index]))
                kept_prob.append(float(table[index, predicted[index]]))
    summary = f"misclassified: {wrong} of {seen} pictures"
    if not kept_images:
        figure = Figure(figsize=figsize or (4.0, 1.5), layout="constrained")
        ax = figure.add_subplot()
        ax.text(
            0.5,
            0.5,
            f"No misclassified pictures ({seen} checked).",
            ha="center",
            va="center",
        )
        ax.set_axis_off()
        return figure
    stack = np.stack(kept_images)
    heatmaps = None
    if show_heatmap:
        heatmaps = class_activation_maps(
            model, stack, class_index=kept_pred, layer=layer
        ).heatmaps
    count = len(kept_images)
    columns = min(images_per_row, count)
    rows = -(-count // columns)
    figure = Figure(
        figsize=figsize or (2.6 * columns, 2.8 * rows + 0.4), layout="constrained"
    )
    axes = figure.subplots(rows, columns, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i >= count:
            continue
        shown = to_display_image(stack[i], value_range)
        if heatmaps is not None:
            shown = overlay_heatmap(shown, heatmaps[i])
        ax.imshow(shown)
        ax.set_title(
            f"true: {_class_name(kept_true[i], class_names)}\n"
            f"pred: {_class_name(kept_pred[i], class_names)} ({kept_prob[i]:.2f})",
            fontsize=9,
        )
    figure.suptitle(summary + (f" (first {count} shown)" if wrong > count else ""))
    return figure
