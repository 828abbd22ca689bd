import keras
import numpy as np
import pytest
from matplotlib.figure import Figure

from keras_smalldata._models import resolve_layer
from keras_smalldata.viz import get_activations, layer_paths, plot_activations
from keras_smalldata.viz._recording import CallRecorder
from keras_smalldata.viz.activations import _channel_grid
from tests.viz._reference import numpy
from tests.viz.conftest import SIZE, small_convnet


def test_layer_paths_of_a_nested_base(nested_vgg):
    model, base = nested_vgg
    paths = layer_paths(model)
    assert paths[0] == "vgg16"
    assert paths[1:4] == [
        "vgg16/block1_conv1",
        "vgg16/block1_conv2",
        "vgg16/block1_pool",
    ]
    assert paths[-2:] == ["gap", "predictions"]
    # every VGG16 layer but its InputLayer, plus the nested model and the head
    assert len(paths) == (len(base.layers) - 1) + 1 + 2
    assert not any("input" in p for p in paths)


def test_resolve_layer_forms(nested_vgg):
    model, base = nested_vgg
    target = base.get_layer("block3_conv1")
    assert resolve_layer(model, "vgg16/block3_conv1") == ("vgg16/block3_conv1", target)
    assert resolve_layer(model, "block3_conv1") == ("vgg16/block3_conv1", target)
    assert resolve_layer(model, target) == ("vgg16/block3_conv1", target)
    with pytest.raises(ValueError, match=r"vgg16/block3_conv1"):
        resolve_layer(model, "block3_conv")  # closest real paths are named
    with pytest.raises(ValueError, match="not a layer of model"):
        resolve_layer(model, keras.layers.Dense(2))
    with pytest.raises(TypeError, match="`layer` must be"):
        resolve_layer(model, 3)


def test_ambiguous_bare_name_lists_full_paths():
    inner_a = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(2, name="d")], name="a"
    )
    inner_b = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(2, name="d")], name="b"
    )
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Add()([inner_a(inputs), inner_b(inputs)]))
    with pytest.raises(ValueError, match=r"ambiguous.*'a/d', 'b/d'"):
        resolve_layer(model, "d")
    assert resolve_layer(model, "b/d")[0] == "b/d"


def test_activations_equal_sub_model_outputs_flat():
    model = small_convnet()
    images = (
        np.random.default_rng(1).uniform(0, 255, (5, SIZE, SIZE, 3)).astype("float32")
    )
    names = ["conv1", "pool1", "conv2", "hidden", "out"]
    acts = get_activations(model, images, names)
    assert list(acts) == names
    reference = keras.Model(model.inputs, [model.get_layer(n).output for n in names])
    for name, expected in zip(names, reference.predict(images, verbose=0)):
        np.testing.assert_allclose(acts[name], expected, rtol=1e-5, atol=1e-5)


def test_activations_inside_a_nested_base(nested_vgg, pictures):
    model, base = nested_vgg
    acts = get_activations(
        model, pictures, ["vgg16/block3_conv1", "block5_pool", "predictions"]
    )
    sub = keras.Model(base.input, base.get_layer("block3_conv1").output)
    np.testing.assert_allclose(
        acts["vgg16/block3_conv1"], numpy(sub(pictures)), rtol=1e-5, atol=1e-4
    )
    np.testing.assert_allclose(
        acts["block5_pool"], numpy(base(pictures)), rtol=1e-5, atol=1e-4
    )
    np.testing.assert_allclose(
        acts["predictions"], numpy(model(pictures)), rtol=1e-5, atol=1e-6
    )
    assert acts["vgg16/block3_conv1"].shape == (3, 8, 8, 256)


def test_model_is_left_unchanged(nested_vgg, pictures):
    model, base = nested_vgg
    layer = base.get_layer("block3_conv1")
    config = model.get_config()
    output = layer.output
    before = numpy(model(pictures))
    get_activations(model, pictures, "vgg16/block3_conv1")
    assert "call" not in layer.__dict__  # the recording hook is gone
    assert model.get_config() == config  # same graph, same layers
    assert layer.output is output  # still the one output of the model's graph
    np.testing.assert_array_equal(numpy(model(pictures)), before)


def test_hooks_removed_after_an_error_in_the_forward_pass():
    model = small_convnet()
    with pytest.raises(ValueError):
        with CallRecorder([("conv1", model.get_layer("conv1"))]) as recorder:
            recorder.run(model, np.zeros((1, SIZE + 1, SIZE, 3), "float32"))
    assert "call" not in model.get_layer("conv1").__dict__


def test_batches_are_concatenated_in_order():
    model = small_convnet()
    images = (
        np.random.default_rng(2).uniform(0, 255, (7, SIZE, SIZE, 3)).astype("float32")
    )
    whole = get_activations(model, images, "conv2", batch_size=32)["conv2"]
    chunked = get_activations(model, images, "conv2", batch_size=3)["conv2"]
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-6)
    single = get_activations(model, images[0], ["conv2"])["conv2"]  # one picture
    assert single.shape == (1,) + whole.shape[1:]


def test_all_layers_by_default():
    model = small_convnet()
    acts = get_activations(model, np.zeros((2, SIZE, SIZE, 3)))
    assert list(acts) == layer_paths(model)
    assert acts["out"].shape == (2, 4)


@pytest.mark.filterwarnings("ignore:`build\\(\\)` was called on layer 'wrapper'")
def test_sequential_built_without_input_and_subclassed_wrapper():
    # Keras 3: a Sequential built with .build() has no layer "called" yet.
    seq = keras.Sequential(
        [
            keras.layers.Conv2D(3, 3, name="c"),
            keras.layers.Flatten(),
            keras.layers.Dense(2, name="d"),
        ]
    )
    seq.build((None, 8, 8, 3))
    x = np.random.default_rng(3).normal(size=(2, 8, 8, 3)).astype("float32")
    acts = get_activations(seq, x, ["c", "d"])
    conv = seq.get_layer("c")
    np.testing.assert_allclose(acts["c"], numpy(conv(x)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(acts["d"], numpy(seq(x)), rtol=1e-5, atol=1e-6)

    class Wrapper(keras.Model):
        def __init__(self, inner, **kwargs):
            super().__init__(**kwargs)
            self.inner = inner
            self.unused = keras.layers.Dense(1, name="unused")
            self.head = keras.layers.Dense(2, name="head")

        def call(self, inputs, training=False):
            return self.head(
                keras.ops.mean(self.inner(inputs, training=training), axis=(1, 2))
            )

    inner_in = keras.Input((8, 8, 3))
    inner = keras.Model(
        inner_in, keras.layers.Conv2D(4, 3, name="conv")(inner_in), name="inner"
    )
    wrapper = Wrapper(inner)
    wrapper(x)
    assert layer_paths(wrapper) == ["inner", "inner/conv", "unused", "head"]
    acts = get_activations(wrapper, x, ["inner/conv", "head"])
    np.testing.assert_allclose(
        acts["inner/conv"], numpy(inner(x)), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(acts["head"], numpy(wrapper(x)), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="did not run"):
        get_activations(wrapper, x, "unused")
    assert "unused" not in get_activations(wrapper, x)


def test_shared_layer_is_refused_by_name():
    shared = keras.layers.Conv2D(3, 1, name="shared")
    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, shared(shared(inputs)))
    with pytest.raises(ValueError, match="ran 2 times"):
        get_activations(model, np.ones((1, 4, 4, 3)), "shared")


def test_bad_arguments():
    model = small_convnet()
    with pytest.raises(TypeError, match="keras.Model"):
        get_activations("model.keras", np.zeros((1, SIZE, SIZE, 3)))
    with pytest.raises(ValueError, match="batch_size"):
        get_activations(model, np.zeros((1, SIZE, SIZE, 3)), batch_size=0)
    with pytest.raises(ValueError, match=r"got shape \(32, 32\)"):
        get_activations(model, np.zeros((SIZE, SIZE)))


def test_channel_grid_standardises_each_channel():
    rng = np.random.default_rng(4)
    # uniform data: |z| < sqrt(3), so 64 z + 128 is never clipped
    maps = rng.uniform(size=(5, 6, 3)) * np.array([1.0, 100.0, 0.01]) + np.array(
        [0.0, -7.0, 3.0]
    )
    maps[..., 2] = 0.5  # a dead channel
    grid = _channel_grid(maps, images_per_row=2, gap=1)
    assert grid.shape == (2 * 5 + 1, 2 * 6 + 1)
    for c, (top, left) in enumerate([(0, 0), (0, 7)]):
        tile = grid[top : top + 5, left : left + 6]
        z = (maps[..., c] - maps[..., c].mean()) / maps[..., c].std()
        np.testing.assert_allclose(tile, z * 64 + 128, rtol=1e-5)
    np.testing.assert_array_equal(
        grid[6:11, 0:6], 128.0
    )  # dead channel: flat grey, no NaN
    assert np.isnan(grid[6:11, 7:]).all()  # empty cell
    assert np.isnan(grid[5, :]).all()  # gap row


def test_plot_activations_figures():
    rng = np.random.default_rng(5)
    acts = {
        "block5_conv3": rng.normal(size=(2, 4, 4, 512)).astype("float32"),
        "conv1": rng.normal(size=(2, 8, 8, 8)).astype("float32"),
        "dense": rng.normal(size=(2, 10)).astype("float32"),
        "weird": rng.normal(size=(2, 2, 2, 2, 2)).astype("float32"),  # skipped
    }
    figures = plot_activations(acts, image_index=1)
    assert len(figures) == 3 and all(isinstance(f, Figure) for f in figures)
    big = figures[0]
    assert big.axes[0].get_title().startswith("block5_conv3")
    image = big.axes[0].get_images()[0].get_array()
    gap = max(1, 4 // 8)
    assert image.shape == (
        32 * 4 + 31 * gap,
        16 * 4 + 15 * gap,
    )  # 512 channels, 16 a row
    width, height = big.get_size_inches()
    assert height > 1.8 * width  # grows with the 32 rows instead of squashing them
    one = plot_activations(acts, one_figure=True, images_per_row=8)
    assert isinstance(one, Figure) and len(one.axes) == 3
    with pytest.raises(TypeError, match="dict"):
        plot_activations([1, 2])
    with pytest.raises(ValueError, match="images_per_row"):
        plot_activations(acts, images_per_row=0)
    with pytest.raises(TypeError, match="image_index"):
        plot_activations(acts, image_index=0.0)
    with pytest.raises(TypeError, match="one_figure"):
        plot_activations(acts, one_figure="yes")
