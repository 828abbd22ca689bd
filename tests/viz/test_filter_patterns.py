import keras
import numpy as np
import pytest
import tensorflow as tf
from matplotlib.figure import Figure

from keras_smalldata.viz import (
    deprocess_image,
    filter_pattern,
    filter_patterns,
    get_activations,
    plot_filter_patterns,
)
from tests.viz.conftest import SIZE, small_convnet


@pytest.fixture(scope="module")
def convnet():
    return small_convnet("patterns", seed=11)


def start_pictures(seed, count, low=0.0, high=255.0):
    """The documented start: mid-grey plus uniform noise of +-(high - low) / 16."""
    noise = np.random.default_rng(seed).uniform(size=(count, SIZE, SIZE, 3))
    return ((low + high) / 2 + (noise - 0.5) * (high - low) / 8).astype("float32")


def mean_activation(model, layer, pictures, filters, border=2):
    acts = get_activations(model, pictures, layer)[layer]
    inner = acts[:, border:-border, border:-border, :]
    return np.array([inner[i, ..., f].mean() for i, f in enumerate(filters)])


def test_ascent_raises_each_filters_mean_activation(convnet):
    filters = [0, 3, 5, 7, 12, 15]
    raw = filter_patterns(
        convnet, "conv2", filters, steps=20, seed=0, deprocess=False, verbose=0
    )
    assert raw.shape == (6, SIZE, SIZE, 3) and raw.dtype == np.float32
    before = mean_activation(convnet, "conv2", start_pictures(0, 6), filters)
    after = mean_activation(convnet, "conv2", raw, filters)
    alive = before > 0
    assert alive.sum() >= 3
    assert np.all(after[alive] > 5 * before[alive])
    assert np.all(after >= before)


def test_one_step_is_the_keras_example_step(convnet):
    # value_range=(-1, 1): start (u - 0.5) * 0.25, step 10 * l2_normalize(grad)
    filters = [2, 6]
    got = filter_patterns(
        convnet,
        "conv1",
        filters,
        steps=1,
        value_range=(-1, 1),
        seed=3,
        deprocess=False,
        verbose=0,
    )
    start = start_pictures(3, 2, -1.0, 1.0)
    np.testing.assert_allclose(
        start,
        (np.random.default_rng(3).uniform(size=start.shape) - 0.5) * 0.25,
        atol=1e-7,
    )
    extractor = keras.Model(convnet.input, convnet.get_layer("conv1").output)
    expected = []
    for picture, f in zip(start, filters):
        x = tf.convert_to_tensor(picture[None])
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_mean(extractor(x)[:, 2:-2, 2:-2, f])
        grads = tf.math.l2_normalize(tape.gradient(loss, x))
        expected.append((x + 10.0 * grads).numpy()[0])
    np.testing.assert_allclose(got, np.stack(expected), atol=1e-5)


def test_batched_equals_one_at_a_time(convnet):
    batched = filter_patterns(
        convnet, "conv2", [4, 1], steps=8, seed=5, deprocess=False, verbose=0
    )
    alone = filter_pattern(convnet, "conv2", 4, steps=8, seed=5, deprocess=False)
    # the first picture of a batch starts from the same noise as a batch of one
    np.testing.assert_allclose(batched[0], alone, rtol=1e-4, atol=1e-2)
    chunked = filter_patterns(
        convnet,
        "conv2",
        [4, 1, 6],
        steps=3,
        seed=5,
        batch_size=2,
        deprocess=False,
        verbose=0,
    )
    assert chunked.shape == (3, SIZE, SIZE, 3)


def test_jitter_regulariser_still_climbs(convnet):
    filters = [1, 3, 5]  # alive at the start (a dead ReLU has no gradient to climb)
    raw = filter_patterns(
        convnet,
        "conv2",
        filters,
        steps=15,
        jitter=3,
        seed=1,
        deprocess=False,
        verbose=0,
    )
    before = mean_activation(convnet, "conv2", start_pictures(1, 3), filters)
    after = mean_activation(convnet, "conv2", raw, filters)
    assert before.min() > 0 and np.all(after > 2 * before)
    plain = filter_patterns(
        convnet, "conv2", filters, steps=15, seed=1, deprocess=False, verbose=0
    )
    assert not np.allclose(raw, plain)


def test_deprocessed_pictures(convnet):
    patterns = filter_patterns(convnet, "conv2", range(3), steps=2, seed=0, verbose=0)
    crop = round(SIZE * 25 / 180)
    assert patterns.shape == (3, SIZE - 2 * crop, SIZE - 2 * crop, 3)
    assert patterns.dtype == np.uint8
    one = filter_pattern(convnet, "conv2", 0, steps=2, seed=0, crop=0)
    assert one.shape == (SIZE, SIZE, 3)


def test_deprocess_image_recipe():
    rng = np.random.default_rng(0)
    image = rng.normal(3.0, 7.0, size=(10, 12, 3))
    out = deprocess_image(image, crop=2)
    expected = (image - image.mean()) / (image.std() + 1e-5) * 0.15 + 0.5
    expected = np.clip(expected, 0, 1)[2:-2, 2:-2] * 255
    assert out.shape == (6, 8, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected.round().astype("uint8"))
    np.testing.assert_array_equal(
        deprocess_image(np.zeros((4, 4, 3))), 128
    )  # flat: mid grey


def test_nested_base_and_dense_units(nested_vgg):
    model, _ = nested_vgg
    patterns = filter_patterns(
        model, "vgg16/block1_conv2", [0, 1], steps=2, seed=0, verbose=0
    )
    assert patterns.shape[0] == 2
    units = filter_patterns(
        model, "predictions", [0, 2], steps=2, seed=0, deprocess=False, verbose=0
    )
    assert units.shape == (2, SIZE, SIZE, 3)


def test_free_input_size_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((None, None, 3)),
            keras.layers.Conv2D(4, 3, activation="relu", name="c"),
        ]
    )
    assert filter_patterns(
        model, "c", [0], size=(24, 40), steps=1, verbose=0, crop=0
    ).shape == (
        1,
        24,
        40,
        3,
    )
    assert filter_patterns(
        model, "c", [0], steps=1, verbose=0, deprocess=False
    ).shape == (
        1,
        180,
        180,
        3,
    )


def test_bad_arguments(convnet):
    with pytest.raises(
        ValueError, match=r"filters \[16, 99\] are out of range: .* 16 filters"
    ):
        filter_patterns(convnet, "conv2", [1, 16, 99], steps=1, verbose=0)
    with pytest.raises(ValueError, match="fixed input size 32x32"):
        filter_patterns(convnet, "conv2", [0], size=64, verbose=0)
    with pytest.raises(ValueError, match="value_range"):
        filter_patterns(convnet, "conv2", [0], value_range=(1, 1), verbose=0)
    with pytest.raises(ValueError, match="filters must be"):
        filter_patterns(convnet, "conv2", [], verbose=0)
    with pytest.raises(ValueError, match="steps"):
        filter_patterns(convnet, "conv2", [0], steps=0, verbose=0)
    with pytest.raises(ValueError, match="crop"):
        filter_patterns(convnet, "conv2", [0], crop=16, verbose=0)
    with pytest.raises(TypeError, match="filter_index"):
        filter_pattern(convnet, "conv2", "0")
    with pytest.raises(ValueError, match="conv2"):
        filter_patterns(convnet, "conv22", [0], verbose=0)


def test_plot_filter_patterns_grid():
    patterns = np.random.default_rng(0).integers(
        0, 256, size=(10, 6, 5, 3), dtype=np.uint8
    )
    figure = plot_filter_patterns(
        patterns, images_per_row=4, margin=2, title="conv2", labels=range(10)
    )
    assert isinstance(figure, Figure)
    ax = figure.axes[0]
    grid = np.asarray(ax.get_images()[0].get_array())
    assert grid.shape == (3 * 6 + 2 * 2, 4 * 5 + 3 * 2, 3)
    np.testing.assert_array_equal(grid[8:14, 7:12], patterns[5])  # row 1, column 1
    assert ax.get_title() == "conv2" and len(ax.texts) == 10
    floats = plot_filter_patterns(patterns[:2].astype("float32") / 255.0)
    assert isinstance(floats, Figure)
    with pytest.raises(ValueError, match="patterns"):
        plot_filter_patterns(np.zeros((0, 4, 4, 3)))


def test_eager_run_gives_the_compiled_result(convnet):
    compiled = filter_patterns(
        convnet, "conv2", [1, 3], steps=3, seed=2, deprocess=False, verbose=0
    )
    eager = filter_patterns(
        convnet,
        "conv2",
        [1, 3],
        steps=3,
        seed=2,
        deprocess=False,
        verbose=0,
        run_eagerly=True,
    )
    np.testing.assert_allclose(eager, compiled, rtol=1e-5, atol=1e-3)
