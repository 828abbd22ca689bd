import matplotlib
import numpy as np
import pytest
import tensorflow as tf
from matplotlib.figure import Figure

from keras_smalldata.viz import (
    cam_faithfulness,
    colorize_heatmap,
    overlay_heatmap,
    plot_grad_cam,
    plot_misclassified,
)
from keras_smalldata.viz.overlay import to_display_image
from tests.viz.conftest import SIZE, region_model, region_pictures

# --- overlay -------------------------------------------------------------------


def test_overlay_blends_with_the_matplotlib_colormap():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(6, 7, 3), dtype=np.uint8)
    heatmap = rng.uniform(size=(6, 7))
    jet = (matplotlib.colormaps["jet"](heatmap)[..., :3] * 255).round()
    out = overlay_heatmap(image, heatmap, alpha=0.4)
    assert out.shape == (6, 7, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(
        out, (0.4 * jet + 0.6 * image).round().astype("uint8")
    )
    np.testing.assert_array_equal(overlay_heatmap(image, heatmap, alpha=0.0), image)
    np.testing.assert_array_equal(
        overlay_heatmap(image, heatmap, alpha=1.0), jet.astype("uint8")
    )
    viridis = overlay_heatmap(image, heatmap, alpha=1.0, cmap="viridis")
    np.testing.assert_array_equal(viridis, colorize_heatmap(heatmap, "viridis"))


def test_overlay_input_forms():
    heatmap = np.zeros((4, 4))
    heatmap[0, 0] = 1.0
    grey = np.full((8, 8), 0.5, dtype="float32")  # float [0, 1], no channel axis
    out = overlay_heatmap(grey, heatmap, alpha=0.5)
    assert out.shape == (8, 8, 3)
    assert (
        out[7, 7].tolist() == out[6, 7].tolist()
    )  # far from the hot corner: same colour
    assert out[0, 0].tolist() != out[7, 7].tolist()  # small heatmap was resized up
    picture_255 = np.full((4, 4, 3), 255.0)
    assert to_display_image(picture_255).max() == 255
    np.testing.assert_array_equal(to_display_image(np.full((2, 2, 1), -1.0)), 0)
    np.testing.assert_array_equal(
        to_display_image(np.full((2, 2, 3), 5.0), value_range=(0, 10)), 128
    )
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    assert overlay_heatmap(rgba, np.ones((2, 2))).shape == (2, 2, 3)
    nan_map = np.full((2, 2), np.nan)
    np.testing.assert_array_equal(
        overlay_heatmap(rgba, nan_map, alpha=1.0), colorize_heatmap(np.zeros((2, 2)))
    )


def test_overlay_bad_arguments():
    with pytest.raises(ValueError, match="alpha"):
        overlay_heatmap(np.zeros((2, 2, 3)), np.zeros((2, 2)), alpha=1.5)
    with pytest.raises(ValueError, match="not a matplotlib colormap"):
        overlay_heatmap(np.zeros((2, 2, 3)), np.zeros((2, 2)), cmap="jett")
    with pytest.raises(ValueError, match="heatmap must be a 2-D"):
        overlay_heatmap(np.zeros((2, 2, 3)), np.zeros((1, 2, 2)))
    with pytest.raises(ValueError, match="image must be"):
        overlay_heatmap(np.zeros((2, 2, 2)), np.zeros((2, 2)))


# --- figures -------------------------------------------------------------------


def test_plot_grad_cam_titles():
    model = region_model("softmax")
    figure = plot_grad_cam(model, region_pictures(), class_names=["red", "green"])
    assert isinstance(figure, Figure) and len(figure.axes) == 6
    titles = [ax.get_title() for ax in figure.axes]
    probabilities = model.predict(region_pictures(), verbose=0)
    assert titles[0] == f"predicted: red ({probabilities[0, 0]:.2f})"
    assert titles[1] == "Grad-CAM for red\nfeatures"
    assert titles[3] == f"predicted: green ({probabilities[1, 1]:.2f})"
    one = plot_grad_cam(model, region_pictures()[0], class_index=1, method="gradcam++")
    assert len(one.axes) == 3 and one.axes[1].get_title().startswith(
        "Grad-CAM++ for class 1"
    )


def _mistake_data():
    """8 pictures; the region model predicts red (0) for even, green (1) for odd ones."""
    pictures = np.repeat(region_pictures(), 4, axis=0)[[0, 4, 1, 5, 2, 6, 3, 7]]
    predicted = np.array([0, 1] * 4)
    labels = predicted.copy()
    labels[[1, 2, 7]] = 1 - labels[[1, 2, 7]]  # three mistakes
    return pictures, labels


def test_plot_misclassified_counts_and_titles():
    model = region_model("softmax")
    pictures, labels = _mistake_data()
    figure = plot_misclassified(
        model, (pictures, labels), class_names=["red", "green"], batch_size=3
    )
    assert figure._suptitle.get_text() == "misclassified: 3 of 8 pictures"
    drawn = [ax for ax in figure.axes if ax.get_images()]
    assert len(drawn) == 3
    assert drawn[0].get_title().startswith("true: red\npred: green (")
    capped = plot_misclassified(model, (pictures, labels), max_images=2)
    assert len([ax for ax in capped.axes if ax.get_images()]) == 2
    assert "(first 2 shown)" in capped._suptitle.get_text()


def test_plot_misclassified_from_tf_data_with_one_hot_labels_and_heatmaps():
    model = region_model("softmax")
    pictures, labels = _mistake_data()
    dataset = tf.data.Dataset.from_tensor_slices((pictures, np.eye(2)[labels])).batch(5)
    figure = plot_misclassified(model, dataset, show_heatmap=True)
    assert figure._suptitle.get_text() == "misclassified: 3 of 8 pictures"
    sigmoid = region_model(
        "sigmoid"
    )  # class 1 = red: binary float labels, shape (n, 1)
    binary = (1 - labels).astype("float32")[:, None]
    figure = plot_misclassified(
        sigmoid, tf.data.Dataset.from_tensor_slices((pictures, binary))
    )
    assert figure._suptitle.get_text() == "misclassified: 3 of 8 pictures"
    with pytest.raises(ValueError, match="infinite"):
        plot_misclassified(
            model, tf.data.Dataset.from_tensor_slices((pictures, labels)).repeat()
        )


def test_plot_misclassified_without_mistakes():
    model = region_model("softmax")
    pictures, labels = _mistake_data()
    figure = plot_misclassified(model, (pictures, np.array([0, 1] * 4)))
    assert "No misclassified pictures (8 checked)" in figure.axes[0].texts[0].get_text()
    with pytest.raises(ValueError, match="max_images"):
        plot_misclassified(model, (pictures, labels), max_images=0)
    with pytest.raises(ValueError, match="labels"):
        plot_misclassified(model, iter([pictures]))


# --- faithfulness --------------------------------------------------------------


def test_cam_faithfulness_metrics():
    model = region_model("softmax", scale=64.0)
    pictures = region_pictures()
    keep = np.zeros((2, SIZE, SIZE), dtype="float32")
    keep[0, :16, :16] = 1.0  # the red square's quadrant
    keep[1, 16:, 16:] = 1.0
    before = model.predict(pictures, verbose=0)[[0, 1], [0, 1]]
    after = model.predict(pictures * keep[..., None], verbose=0)[[0, 1], [0, 1]]
    np.testing.assert_allclose(after, before)  # the evidence is all kept
    result = cam_faithfulness(model, pictures, heatmaps=keep)
    assert result == {"average_drop": 0.0, "increase_in_confidence": 0.0, "count": 2}
    removed = cam_faithfulness(model, pictures, heatmaps=1.0 - keep)
    after = model.predict(pictures * (1.0 - keep)[..., None], verbose=0)[[0, 1], [0, 1]]
    expected = 100 * np.mean(np.maximum(0, before - after) / before)
    assert removed["average_drop"] == pytest.approx(expected, rel=1e-5)
    assert removed["average_drop"] > 40
    half = cam_faithfulness(model, pictures, heatmaps=0.5 * keep, class_index=[0, 1])
    after = model.predict(pictures * 0.5 * keep[..., None], verbose=0)[[0, 1], [0, 1]]
    assert half["average_drop"] == pytest.approx(
        100 * np.mean(np.maximum(0, before - after) / before), rel=1e-5
    )
    computed = cam_faithfulness(model, pictures)  # Grad-CAM maps: they keep the squares
    assert computed["average_drop"] < 5.0
    with pytest.raises(ValueError, match="heatmaps must have shape"):
        cam_faithfulness(model, pictures, heatmaps=np.ones((2, 8, 8)))
