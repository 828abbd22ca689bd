import matplotlib
import numpy as np
import pytest

from keras_smalldata.viz import colorize_heatmap, overlay_heatmap
from keras_smalldata.viz.overlay import to_display_image


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
    with pytest.raises(ValueError, match="Did you mean 'jet'"):
        overlay_heatmap(np.zeros((2, 2, 3)), np.zeros((2, 2)), cmap="jett")
    with pytest.raises(TypeError, match="alpha"):
        overlay_heatmap(np.zeros((2, 2, 3)), np.zeros((2, 2)), alpha="0.4")
    with pytest.raises(ValueError, match="value_range"):
        overlay_heatmap(np.zeros((2, 2, 3)), np.zeros((2, 2)), value_range=(1, 0))
    with pytest.raises(ValueError, match="`heatmap` must be a 2-D"):
        overlay_heatmap(np.zeros((2, 2, 3)), np.zeros((1, 2, 2)))
    with pytest.raises(ValueError, match="image must be"):
        overlay_heatmap(np.zeros((2, 2, 2)), np.zeros((2, 2)))
