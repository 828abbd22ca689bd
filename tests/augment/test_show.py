"""show_augmentations: a matplotlib Figure grid."""

import numpy as np
import pytest
from matplotlib.figure import Figure

from keras_smalldata.augment import RandomAffine, show_augmentations
from tests.conftest import write_picture


def _visible_axes(fig):
    return [ax for ax in fig.axes if ax.images]


def test_grid_of_num_images_variants():
    picture = np.random.default_rng(0).integers(0, 256, (32, 32, 3)).astype("uint8")
    fig = show_augmentations(RandomAffine(rotation_range=40, seed=0), picture, num_images=5)
    assert isinstance(fig, Figure)
    axes = _visible_axes(fig)
    assert len(axes) == 5 and len(fig.axes) == 6  # 3x2 grid, last panel empty
    shown = [ax.images[0].get_array() for ax in axes]
    assert all(s.min() >= 0 and s.max() <= 1 for s in shown)  # 0-255 scaled for display
    assert np.abs(np.asarray(shown[0]) - np.asarray(shown[1])).max() > 0.01


def test_original_first_columns_and_figsize():
    picture = np.random.default_rng(1).uniform(0, 1, (1, 24, 24, 1)).astype("float32")
    fig = show_augmentations(
        RandomAffine(zoom_range=0.3, seed=1), picture, num_images=3, images_per_row=4,
        include_original=True, figsize=(8, 2),
    )  # fmt: skip
    axes = _visible_axes(fig)
    assert [ax.get_title() for ax in axes] == ["original", "#1", "#2", "#3"]
    np.testing.assert_allclose(
        np.asarray(axes[0].images[0].get_array()), picture[0, ..., 0]
    )
    assert tuple(fig.get_size_inches()) == (8, 2)


def test_reads_a_picture_file(tmp_path):
    path = write_picture(tmp_path / "cat.png", size=32)
    fig = show_augmentations(RandomAffine(horizontal_flip=True, seed=0), str(path), num_images=2)
    assert len(_visible_axes(fig)) == 2


def test_bad_inputs():
    layer = RandomAffine(rotation_range=10)
    with pytest.raises(ValueError, match="images\\[0\\]"):
        show_augmentations(layer, np.zeros((2, 8, 8, 3)), num_images=2)
    with pytest.raises(ValueError, match="`num_images` must be"):
        show_augmentations(layer, np.zeros((8, 8, 3)), num_images=0)
    with pytest.raises(ValueError, match="`images_per_row` must be"):
        show_augmentations(layer, np.zeros((8, 8, 3)), images_per_row=0)
    with pytest.raises(TypeError):
        show_augmentations(layer, np.zeros((8, 8, 3)), 2)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        show_augmentations(layer, "missing.png")
    with pytest.raises(TypeError, match="layer"):
        show_augmentations("flip", np.zeros((8, 8, 3)))
