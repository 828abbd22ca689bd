"""Interpreting a classifier's mistakes: confusion matrix, most confused classes, top losses.

`interpret` predicts a labelled dataset once (in inference mode, batch by
batch) and keeps, for every picture, its true class, the predicted class,
the per-class probabilities and its loss; of the pictures themselves it
keeps only the ``max_images`` with the highest losses, so a big dataset is
never held in memory. The `Interpretation` it returns gives the confusion
matrix, the most confused pairs of classes and the top losses, and draws
the confusion matrix and the top-loss pictures with their Grad-CAM.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import keras
import numpy as np

from keras_smalldata import _backend
from keras_smalldata._arguments import (
    check_bool,
    check_choice,
    check_int,
    check_number,
    check_positive_int,
)
from keras_smalldata._figures import new_figure
from keras_smalldata._models import check_model
from keras_smalldata._types import Data
from keras_smalldata.viz._outputs import check_class_names, class_name
from keras_smalldata.viz.cam import class_activation_maps
from keras_smalldata.viz.misclassified import (
    is_array_pair,
    picture_grid,
    predicted_batches,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


@dataclasses.dataclass
class Interpretation:
    """A model's predictions on labelled data, to study its mistakes.

    Made by `interpret`. Every array is in the order of the data.

    Attributes:
        probabilities: Per-class probabilities, float64 (pictures, classes):
            the model's outputs when it outputs probabilities, their softmax
            when it outputs logits; one sigmoid unit p gives the two columns
            (1 - p, p).
        labels: The true classes, int64 (pictures,).
        predicted: The predicted classes (the most probable), int64
            (pictures,).
        losses: The cross-entropy of each picture, float64 (pictures,):
            ``-log(p)``, p the probability of its true class in
            ``probabilities`` clipped below at ``keras.config.epsilon()``.
        images: The pictures with the highest losses, highest first, as the
            model took them (kept, height, width, channels): ``images[i]``
            is picture ``top_losses(len(images))[i]``.
        class_names: The names of the classes, or None.
        model: The model that was interpreted (for the Grad-CAM of
            `plot_top_losses`).
    """

    probabilities: np.ndarray
    labels: np.ndarray
    predicted: np.ndarray
    losses: np.ndarray
    images: np.ndarray
    class_names: list[str] | None = None
    model: keras.Model | None = dataclasses.field(
        default=None, repr=False, compare=False
    )

    def __repr__(self) -> str:
        total = len(self.labels)
        right = int(np.sum(self.labels == self.predicted))
        return (
            f"Interpretation({total} pictures, {self.classes} classes, accuracy "
            f"{right / total if total else 0.0:.1%}, pictures of the top "
            f"{len(self.images)} losses kept)"
        )

    @property
    def classes(self) -> int:
        """The number of classes (2 for one sigmoid unit)."""
        return int(self.probabilities.shape[1])

    @property
    def confusion_matrix(self) -> np.ndarray:
        """Counts, int64 (classes, classes): row = true class, column = predicted class."""
        cells = self.labels * self.classes + self.predicted
        return np.bincount(cells, minlength=self.classes**2).reshape(
            self.classes, self.classes
        )

    def top_losses(self, k: int = 9) -> np.ndarray:
        """The positions of the ``k`` pictures with the highest losses, highest first.

        Equal losses keep the dataset's order. Any ``k`` up to the number of
        pictures works (a larger ``k`` gives them all); only the first
        ``len(images)`` have their picture kept for `plot_top_losses`.

        Args:
            k: How many pictures.

        Returns:
            An int64 array of positions in the dataset; index ``losses``,
            ``labels``, ``predicted`` or ``probabilities`` with it.
        """
        check_positive_int("k", k)
        positions = np.arange(len(self.losses))
        return np.lexsort((positions, -self.losses))[:k].astype("int64")

    def most_confused(self, min_count: int = 1) -> list[tuple]:
        """The pairs of classes the model confuses most: (true, predicted, count).

        Args:
            min_count: Leave out pairs confused fewer times.

        Returns:
            A list of ``(true, predicted, count)`` for every pair of
            different classes confused at least ``min_count`` times, the most
            frequent first (equal counts by class). The classes are names
            when `interpret` was given ``class_names``, indices otherwise.
        """
        check_positive_int("min_count", min_count)
        matrix = self.confusion_matrix
        pairs = [
            (true, predicted, int(matrix[true, predicted]))
            for true in range(self.classes)
            for predicted in range(self.classes)
            if true != predicted and matrix[true, predicted] >= min_count
        ]
        pairs.sort(key=lambda pair: -pair[2])
        if self.class_names is None:
            return pairs
        names = self.class_names
        return [
            (names[true], names[predicted], count) for true, predicted, count in pairs
        ]

    def plot_confusion_matrix(
        self,
        normalize: bool = False,
        *,
        cmap: str = "Blues",
        ax: Axes | None = None,
        figsize: tuple[float, float] | None = None,
    ) -> Figure:
        """Draws the confusion matrix, with the class names and the count in every cell.

        Args:
            normalize: False writes the counts; True divides each row by the
                number of pictures of its true class (each row then sums to 1,
                the diagonal is the recall of each class; a class without
                pictures gets a row of zeros) and writes the fractions.
            cmap: A matplotlib colormap for the cells.
            ax: A matplotlib Axes to draw into; None makes a new Figure.
            figsize: Figure size when ``ax`` is None.

        Returns:
            The `matplotlib.figure.Figure`: rows are the true classes (y
            axis), columns the predicted classes (x axis), and the title says
            how many pictures and the accuracy.
        """
        check_bool("normalize", normalize)
        matrix = self.confusion_matrix
        values = matrix.astype("float64")
        if normalize:
            totals = values.sum(axis=1, keepdims=True)
            values = np.divide(
                values, totals, out=np.zeros_like(values), where=totals > 0
            )
        classes = self.classes
        names = [class_name(i, self.class_names) for i in range(classes)]
        if ax is None:
            side = max(3.5, 0.6 * classes + 2.5)
            figure = new_figure(
                figsize=figsize or (side + 0.5, side), layout="constrained"
            )
            ax = figure.add_subplot()
        else:
            figure = ax.figure
        top = 1.0 if normalize else max(float(values.max()), 1.0)
        ax.imshow(values, cmap=cmap, vmin=0.0, vmax=top, interpolation="nearest")
        for true in range(classes):
            for predicted in range(classes):
                value = values[true, predicted]
                ax.text(
                    predicted,
                    true,
                    f"{value:.2f}" if normalize else str(int(matrix[true, predicted])),
                    ha="center",
                    va="center",
                    color="white" if value > 0.5 * top else "black",
                )
        long_names = max(len(name) for name in names) > 6
        ax.set_xticks(
            range(classes),
            labels=names,
            rotation=45 if long_names else 0,
            ha="right" if long_names else "center",
        )
        ax.set_yticks(range(classes), labels=names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        total = int(matrix.sum())
        accuracy = np.trace(matrix) / total if total else 0.0
        ax.set_title(
            f"confusion matrix{' (fraction of each row)' if normalize else ''}\n"
            f"{total} pictures, accuracy {accuracy:.1%}"
        )
        return figure

    def plot_top_losses(
        self,
        k: int = 9,
        *,
        grad_cam: bool = True,
        layer: str | keras.layers.Layer | None = None,
        images_per_row: int | None = None,
        alpha: float = 0.4,
        value_range: tuple[float, float] | None = None,
        figsize: tuple[float, float] | None = None,
    ) -> Figure:
        """Draws the ``k`` pictures with the highest losses, highest first.

        Each panel is titled with the true class, the predicted class and its
        probability, the loss and the picture's position in the data. With
        ``grad_cam=True`` each picture carries the Grad-CAM overlay of its
        predicted class (`class_activation_maps`).

        Args:
            k: How many pictures, at most the ``max_images`` kept by
                `interpret`.
            grad_cam: Overlay each picture's Grad-CAM for its predicted class.
            layer: The Grad-CAM layer (None: the last convolution block).
            images_per_row: Pictures per row; None makes a square-ish grid.
            alpha: Weight of the heatmap in the overlay.
            value_range: (low, high) of the pictures for display; None
                guesses (see `overlay_heatmap`).
            figsize: Figure size; default 2.6 inches per picture.

        Returns:
            A `matplotlib.figure.Figure` with one panel per picture.

        Raises:
            ValueError: If ``k`` is more than the pictures `interpret` kept.
        """
        check_positive_int("k", k)
        check_bool("grad_cam", grad_cam)
        check_number("alpha", alpha, 0.0, 1.0)
        if images_per_row is not None:
            check_positive_int("images_per_row", images_per_row)
        kept = len(self.images)
        k = min(k, len(self.losses))
        if k > kept:
            raise ValueError(
                f"`k` is {k} but interpret kept the pictures of only the {kept} "
                f"highest losses; call interpret(..., max_images={k}) to plot "
                f"more. Received: k={k}."
            )
        top = self.top_losses(k)
        images = self.images[:k]
        predicted = self.predicted[top]
        heatmaps = None
        if grad_cam:
            heatmaps = class_activation_maps(
                self.model, images, class_index=predicted, layer=layer, verbose=0
            ).heatmaps
        titles = [
            f"true: {class_name(int(self.labels[i]), self.class_names)}\n"
            f"pred: {class_name(int(self.predicted[i]), self.class_names)} "
            f"({self.probabilities[i, self.predicted[i]]:.2f})\n"
            f"loss {self.losses[i]:.2f}, picture {int(i)}"
            for i in top
        ]
        figure = picture_grid(
            images,
            titles,
            heatmaps,
            images_per_row or math.ceil(math.sqrt(k)),
            value_range,
            figsize,
            alpha=alpha,
        )
        figure.suptitle(
            f"top {k} losses of {len(self.losses)} pictures (loss = -log p(true class))"
        )
        return figure


def _cross_entropy(table: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``-log p(true class)``, p clipped below at Keras' epsilon."""
    p_true = table[np.arange(len(truth)), truth]
    # abs(log p) is -log p for p <= 1, without the -0.0 of -log(1)
    return np.abs(np.log(np.clip(p_true, keras.config.epsilon(), 1.0)))


def _batch_count(data, batch_size: int) -> int | None:
    """How many batches ``data`` yields, when known."""
    if is_array_pair(data):
        return math.ceil(len(data[0]) / batch_size)
    if _backend.is_tf_dataset(data):
        count = int(data.cardinality())
        return count if count >= 0 else None
    try:
        return len(data)
    except TypeError:
        return None


def interpret(
    model: keras.Model,
    data: Data,
    *,
    class_names: Sequence[str] | None = None,
    max_images: int = 16,
    batch_size: int = 32,
    verbose: int = 0,
) -> Interpretation:
    """Predicts labelled data once to study the model's mistakes.

    Every picture is predicted in inference mode; its true class, predicted
    class, per-class probabilities and loss are kept, and so are the
    pictures of the ``max_images`` highest losses (only those: ``data`` is
    streamed, never held in memory).

    Args:
        model: A Keras classifier: softmax (or logits) over classes, or one
            sigmoid unit (classes 0 and 1).
        data: A finite `tf.data.Dataset` of (images, labels) batches (e.g.
            from `keras.utils.image_dataset_from_directory` with
            ``shuffle=False``, so that positions are stable), any iterable of
            such batches, or an ``(images, labels)`` tuple of arrays. Labels
            are class indices, binary 0/1 or one-hot rows.
        class_names: Names of the classes, e.g. ``test_ds.class_names``; one
            per class of the model (2 for one sigmoid unit).
        max_images: How many of the highest-loss pictures to keep for
            `Interpretation.plot_top_losses` (0 keeps none).
        batch_size: Batch size for arrays given as an (images, labels) tuple.
        verbose: 0 (default) is silent; 1 or 2 show a progress bar of
            batches.

    Returns:
        An `Interpretation`: ``.confusion_matrix``, ``.most_confused()``,
        ``.top_losses(k)``, ``.plot_confusion_matrix()``,
        ``.plot_top_losses(k)``, and the per-picture ``.labels``,
        ``.predicted``, ``.probabilities`` and ``.losses``.

    Raises:
        ValueError: For a label that is not a class of the model, class
            names of the wrong number, or empty or infinite data.

    Example:

    ```python
    result = interpret(model, test_ds, class_names=test_ds.class_names)
    result.confusion_matrix        # rows: true class, columns: predicted
    result.most_confused()         # [('cat', 'dog', 12), ('dog', 'cat', 5)]
    fig = result.plot_top_losses(9)
    ```
    """
    check_model(model)
    class_names = check_class_names(class_names)
    check_int("max_images", max_images, minimum=0)
    check_positive_int("batch_size", batch_size)
    check_choice("verbose", verbose, (0, 1, 2))
    progbar = target = None
    if verbose:
        target = _batch_count(data, batch_size)
        progbar = keras.utils.Progbar(target, verbose=verbose, unit_name="batch")
    rows: dict[str, list[np.ndarray]] = {
        key: [] for key in ("probabilities", "labels", "predicted", "losses")
    }
    kept_images: np.ndarray | None = None
    kept_positions = np.zeros(0, dtype="int64")
    kept_losses = np.zeros(0, dtype="float64")
    seen = step = 0
    for batch, truth, predicted, table in predicted_batches(model, data, batch_size):
        if class_names is not None and len(class_names) != table.shape[1]:
            raise ValueError(
                f"`class_names` has {len(class_names)} names but the model has "
                f"{table.shape[1]} classes: pass one name per class. "
                f"Received: class_names={class_names!r}."
            )
        losses = _cross_entropy(table, truth)
        for key, value in zip(rows, (table, truth, predicted, losses)):
            rows[key].append(value)
        if kept_images is None:
            kept_images = np.zeros((0,) + tuple(batch.shape[1:]), dtype="float32")
        if max_images:
            # The highest losses so far: those kept and this batch's, in one order.
            positions = np.concatenate([kept_positions, seen + np.arange(len(truth))])
            candidates = np.concatenate([kept_losses, losses])
            order = np.lexsort((positions, -candidates))[:max_images]
            if np.any(order >= len(kept_positions)):
                pictures = keras.ops.convert_to_numpy(batch)
                kept_images = np.stack(
                    [
                        kept_images[i]
                        if i < len(kept_positions)
                        else pictures[i - len(kept_positions)]
                        for i in order
                    ]
                )
                kept_positions, kept_losses = positions[order], candidates[order]
        seen += len(truth)
        step += 1
        if progbar is not None:
            progbar.update(step)
    if not seen:
        raise ValueError(
            "`data` holds no pictures: pass labelled data, e.g. the test split."
        )
    if progbar is not None and target is None:
        progbar.update(step, finalize=True)
    assert kept_images is not None  # set at the first batch, and there was one
    return Interpretation(
        probabilities=np.concatenate(rows["probabilities"]),
        labels=np.concatenate(rows["labels"]),
        predicted=np.concatenate(rows["predicted"]),
        losses=np.concatenate(rows["losses"]),
        images=kept_images,
        class_names=class_names,
        model=model,
    )
