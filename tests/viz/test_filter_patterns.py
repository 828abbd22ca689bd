import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
from matplotlib.figure import Figure

from keras_smalldata.viz import (
    FilterPatterns,
    deprocess_image,
    filter_pattern,
    filter_patterns,
    get_activations,
    plot_filter_patterns,
)
from tests.viz._reference import gradient
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


def one_step(extractor, pictures, filters, step=10.0):
    """One step of the Keras example: picture + step * l2_normalize(d mean / d picture)."""
    expected = []
    for picture, f in zip(pictures, filters):
        grads = gradient(
            lambda x, f=f: keras.ops.mean(extractor(x)[:, 2:-2, 2:-2, f]), picture[None]
        )
        expected.append(picture + step * grads[0] / np.sqrt(np.sum(grads**2)))
    return np.stack(expected)


def test_one_step_is_the_keras_example_step(convnet):
    # value_range=(-1, 1): start (u - 0.5) * 0.25, step 10 * l2_normalize(grad)
    filters = [2, 6]
    got = filter_patterns(
        convnet,
        "conv1",
        filters,
        steps=1,
        value_range=(-1, 1),
        objective="activation",
        restarts=0,
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
    np.testing.assert_allclose(got, one_step(extractor, start, filters), atol=1e-5)


def test_one_step_before_the_activation(convnet):
    # the default climbs what conv2's ReLU receives: the same network without it
    twin_layers = []
    inputs = keras.Input((SIZE, SIZE, 3))
    x = inputs
    for layer in convnet.layers[1:]:
        config = layer.get_config()
        if layer.name == "conv2":
            config["activation"] = None
        twin = type(layer).from_config(config)
        x = twin(x)
        twin_layers.append((twin, layer))
        if layer.name == "conv2":
            break
    extractor = keras.Model(inputs, x)
    for twin, layer in twin_layers:
        twin.set_weights(layer.get_weights())
    filters = [0, 5, 9]
    got = filter_patterns(
        convnet,
        "conv2",
        filters,
        steps=1,
        value_range=(-1, 1),
        seed=4,
        restarts=0,
        deprocess=False,
        verbose=0,
    )
    start = start_pictures(4, 3, -1.0, 1.0)
    np.testing.assert_allclose(got, one_step(extractor, start, filters), atol=1e-5)


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
    # three filters alive at the start, so that their activation itself can rise
    everything = mean_activation(convnet, "conv2", start_pictures(1, 16), range(16))
    filters = [int(f) for f in np.flatnonzero(everything > 0)[:3]]
    assert len(filters) == 3
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
        model, "c", [0], image_size=(24, 40), steps=1, verbose=0, crop=0
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
    with pytest.raises(ValueError, match="`image_size` does not match .* 32x32"):
        filter_patterns(convnet, "conv2", [0], image_size=64, verbose=0)
    with pytest.raises(ValueError, match="value_range"):
        filter_patterns(convnet, "conv2", [0], value_range=(1, 1), verbose=0)
    with pytest.raises(ValueError, match="`filters` must be"):
        filter_patterns(convnet, "conv2", [], verbose=0)
    with pytest.raises(TypeError, match="`filters` must be"):
        filter_patterns(convnet, "conv2", [0.5], verbose=0)
    with pytest.raises(ValueError, match="Did you mean 'pre_activation'"):
        filter_patterns(convnet, "conv2", [0], objective="preactivation", verbose=0)
    with pytest.raises(TypeError, match="step_size"):
        filter_patterns(convnet, "conv2", [0], step_size="10", verbose=0)
    with pytest.raises(TypeError, match="jitter"):
        filter_patterns(convnet, "conv2", [0], jitter=True, verbose=0)
    with pytest.raises(ValueError, match="steps"):
        filter_patterns(convnet, "conv2", [0], steps=0, verbose=0)
    with pytest.raises(ValueError, match="crop"):
        filter_patterns(convnet, "conv2", [0], crop=16, verbose=0)
    with pytest.raises(TypeError, match="filter_index"):
        filter_pattern(convnet, "conv2", "0")
    with pytest.raises(ValueError, match="filter_index"):
        filter_pattern(convnet, "conv2", -1)
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


# --- dead filters: a ReLU that is off everywhere on the start picture (issue 12) ---


def dead_relu_model(separate_activation=False):
    """Conv filters that no start picture reaches: positive kernels, bias -0.7 x their sum.

    The start (mid-grey +-1/16, rescaled to [0, 1] inside) gives a
    pre-activation of about (0.5 - 0.7) x sum(kernel) < 0 at every position,
    so the ReLU outputs 0 everywhere and its gradient is 0. With
    ``separate_activation`` the convolution is linear and followed by
    BatchNormalization (gamma of both signs) and a ReLU6 layer, as in
    MobileNetV2.
    """
    rng = np.random.default_rng(8)
    kernel = rng.uniform(0.1, 0.5, size=(3, 3, 3, 4)).astype("float32")
    bias = (-0.7 * kernel.sum(axis=(0, 1, 2))).astype("float32")
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    if not separate_activation:
        conv = keras.layers.Conv2D(4, 3, activation="relu", name="dead")
        model = keras.Model(inputs, conv(x))
        conv.set_weights([kernel, bias])
        return model
    conv = keras.layers.Conv2D(4, 3, name="conv")
    norm = keras.layers.BatchNormalization(name="bn")
    outputs = keras.layers.ReLU(max_value=6.0, name="dead")(norm(conv(x)))
    model = keras.Model(inputs, outputs)
    conv.set_weights([kernel, np.zeros(4, "float32")])
    gamma = np.array([1.0, 2.0, -1.0, -0.5], "float32")
    sums = kernel.sum(axis=(0, 1, 2))
    # normalised value at the start: gamma * (0.5 sum - mean) + beta < 0 for every channel
    mean = np.where(gamma > 0, 0.7 * sums, 0.3 * sums).astype("float32")
    norm.set_weights([gamma, np.zeros(4, "float32"), mean, np.ones(4, "float32")])
    return model


@pytest.mark.parametrize("separate_activation", [False, True])
def test_dead_relu_filters_are_excited_before_the_activation(separate_activation):
    model = dead_relu_model(separate_activation)
    start = start_pictures(0, 4)
    assert not np.any(get_activations(model, start, "dead")["dead"])  # all off
    # the Keras example's objective: zero gradient, the start comes back, reported
    with pytest.warns(
        UserWarning, match="4 of 4 filters of layer 'dead' were not excited"
    ) as caught:
        stuck = filter_patterns(
            model,
            "dead",
            range(4),
            steps=10,
            objective="activation",
            restarts=0,
            seed=0,
            deprocess=False,
            verbose=0,
        )
    ours = [w for w in caught if "were not excited" in str(w.message)]
    assert [w.filename for w in ours] == [__file__]  # it points at the caller's line
    np.testing.assert_array_equal(np.asarray(stuck), start)
    assert not stuck.excited.any()
    np.testing.assert_array_equal(stuck.final_activation, 0.0)
    # the default climbs the value before the ReLU: every filter fires
    found = filter_patterns(
        model, "dead", range(4), steps=10, seed=0, deprocess=False, verbose=0
    )
    assert found.excited.all() and found.objective == "pre_activation"
    np.testing.assert_array_equal(found.start_activation, 0.0)
    measured = get_activations(model, np.asarray(found), "dead")["dead"]
    means = [measured[i, 2:-2, 2:-2, i].mean() for i in range(4)]
    np.testing.assert_allclose(found.final_activation, means, rtol=1e-4)
    assert min(means) > 0


def test_a_dead_filter_deeper_in_the_network():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(
        4, 3, activation="relu", name="alive", bias_initializer="ones"
    )(x)
    second = keras.layers.Conv2D(3, 3, activation="relu", name="dead")
    model = keras.Model(inputs, second(x))
    kernel = np.abs(second.get_weights()[0])
    second.set_weights([kernel, -1.5 * kernel.sum(axis=(0, 1, 2))])
    assert not np.any(get_activations(model, start_pictures(0, 3), "dead")["dead"])
    found = filter_patterns(model, "dead", range(3), steps=15, seed=0, verbose=0)
    assert found.excited.all()


def test_a_restart_opens_the_relus_before_the_layer():
    # "behind" sees only "gate", a ReLU that the faint grey start never opens
    # (red minus green over 3x3 pixels stays within +-1.2, the bias is -2);
    # uniform noise over the whole range opens it at some positions.
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    gate = keras.layers.Conv2D(1, 3, activation="relu", name="gate")
    behind = keras.layers.Conv2D(1, 3, activation="relu", name="behind")
    model = keras.Model(inputs, behind(gate(x)))
    kernel = np.zeros((3, 3, 3, 1), "float32")
    kernel[:, :, 0], kernel[:, :, 1] = 1.0, -1.0
    gate.set_weights([kernel, np.array([-2.0], "float32")])
    behind.set_weights([np.ones((3, 3, 1, 1), "float32"), np.zeros(1, "float32")])
    common = dict(steps=5, seed=0, deprocess=False, verbose=0)
    with pytest.warns(UserWarning, match="even after 0 restart"):
        alone = filter_patterns(model, "behind", [0], restarts=0, **common)
    assert not alone.excited[0] and alone.attempts[0] == 1
    restarted = filter_patterns(model, "behind", [0], **common)
    assert restarted.excited[0] and restarted.attempts[0] == 2
    assert restarted.final_activation[0] > restarted.start_activation[0]


def test_filter_patterns_result_behaves_as_the_array_of_pictures(convnet):
    patterns = filter_patterns(convnet, "conv2", [3, 1, 4], steps=2, seed=0, verbose=0)
    assert isinstance(patterns, FilterPatterns)
    pictures = patterns.images
    assert patterns.shape == pictures.shape and patterns.dtype == np.uint8
    assert patterns.ndim == 4 and len(patterns) == 3
    np.testing.assert_array_equal(np.asarray(patterns), pictures)
    np.testing.assert_array_equal(patterns[1], pictures[1])
    np.testing.assert_array_equal(np.stack(list(patterns)), pictures)
    np.testing.assert_array_equal(patterns.filters, [3, 1, 4])
    assert patterns.layer == "conv2" and patterns.excited.dtype == bool
    assert "excited 3 of 3" in repr(patterns)
    np.testing.assert_array_equal(np.asarray(patterns, dtype="float32"), pictures)


def test_plot_crosses_out_the_filters_that_were_not_excited():
    pictures = np.full((5, 6, 6, 3), 128, dtype=np.uint8)
    patterns = FilterPatterns(
        images=pictures,
        filters=np.arange(5),
        excited=np.array([True, False, True, True, False]),
        start_activation=np.zeros(5),
        final_activation=np.array([1.0, 0.0, 2.0, 3.0, 0.0]),
        attempts=np.array([1, 3, 1, 2, 3]),
        layer="conv",
        objective="pre_activation",
    )
    figure = plot_filter_patterns(patterns, images_per_row=3, margin=2, title="conv")
    ax = figure.axes[0]
    assert ax.get_title() == "conv\n2 of 5 filters not excited (crossed out)"
    lines = ax.get_lines()
    assert len(lines) == 4 and all(line.get_color() == "red" for line in lines)
    # filter 1 is row 0, column 1; filter 4 is row 1, column 1
    xs = sorted({tuple(line.get_xdata()) for line in lines})
    assert xs == [(7.5, 13.5)]
    ys = sorted({min(line.get_ydata()) for line in lines})
    assert ys == [-0.5, 7.5]
    unmarked = plot_filter_patterns(pictures, title="conv")
    assert not unmarked.axes[0].get_lines() and unmarked.axes[0].get_title() == "conv"


def test_a_cached_compiled_step_sees_new_weights(convnet):
    model = small_convnet("retrained_patterns", seed=40)
    kwargs = dict(steps=3, seed=2, deprocess=False, verbose=0)
    before = filter_patterns(model, "conv2", [1, 3], **kwargs)
    model.set_weights(small_convnet("other_patterns", seed=41).get_weights())
    after = filter_patterns(model, "conv2", [1, 3], **kwargs)
    eager = filter_patterns(model, "conv2", [1, 3], run_eagerly=True, **kwargs)
    np.testing.assert_allclose(
        np.asarray(after), np.asarray(eager), rtol=1e-5, atol=1e-3
    )
    assert not np.allclose(np.asarray(after), np.asarray(before), atol=1e-2)


@pytest.mark.filterwarnings("ignore:.*were not excited by the ascent")
@pytest.mark.parametrize("objective", ["activation", "pre_activation"])
def test_a_cached_compiled_step_follows_a_changed_layer(objective):
    """Issue 23: a layer changed after a call (its activation replaced) got the old step."""
    model = small_convnet("changed_patterns", seed=42)
    kwargs = dict(steps=3, seed=2, deprocess=False, verbose=0, restarts=0, objective=objective)
    before = filter_patterns(model, "conv2", [1, 3], **kwargs)
    model.get_layer("conv1").activation = keras.activations.tanh
    after = filter_patterns(model, "conv2", [1, 3], **kwargs)
    eager = filter_patterns(model, "conv2", [1, 3], run_eagerly=True, **kwargs)
    np.testing.assert_allclose(
        after.final_activation, eager.final_activation, rtol=1e-4, atol=1e-6
    )
    np.testing.assert_allclose(np.asarray(after), np.asarray(eager), rtol=1e-5, atol=1e-3)
    assert not np.allclose(after.final_activation, before.final_activation, rtol=1e-3)


# --- real pretrained weights (skipped where ../shared/weights is absent) ---------

WEIGHTS = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "weights"
    / "mobilenet_v2_imagenet_no_top.h5"
)


@pytest.mark.skipif(not WEIGHTS.exists(), reason="no ImageNet MobileNetV2 weights")
def test_real_mobilenet_v2_filters_are_excited_by_default():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # weights made for 224 px, used at 64 px
        model = keras.applications.MobileNetV2(
            weights=str(WEIGHTS), include_top=False, input_shape=(64, 64, 3)
        )
    layer, filters = "block_1_depthwise_relu", range(8)
    common = dict(steps=10, value_range=(-1, 1), seed=0, deprocess=False, verbose=0)
    with pytest.warns(UserWarning, match="were not excited"):
        example = filter_patterns(
            model, layer, filters, objective="activation", restarts=0, **common
        )
    assert example.excited.mean() < 0.95  # the Keras example's ascent: dead filters
    found = filter_patterns(model, layer, filters, **common)
    assert found.excited.all()


@pytest.mark.parametrize("shift", [0, 1, 5, -2, 9])
def test_jitter_roll_is_numpys_with_a_tensor_shift(shift):
    from keras_smalldata.viz.filter_patterns import _roll

    x = np.arange(2 * 7 * 5 * 3, dtype="float32").reshape(2, 7, 5, 3)
    for axis in (1, 2):
        got = _roll(keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(shift), axis)
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(got), np.roll(x, shift, axis))


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's log")
def test_patterns_of_many_layers_log_no_retracing_warning(caplog):
    inputs = keras.Input((16, 16, 3))
    x, names = inputs, []
    for i in range(7):
        x = keras.layers.Conv2D(2, 3, padding="same", activation="relu", name=f"c{i}")(x)
        names.append(f"c{i}")
    model = keras.Model(inputs, x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # filters that stay shut
        for name in names:  # one compiled step and measure per layer, by design
            filter_patterns(model, name, [0], steps=2, verbose=0)
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]
