import dataclasses

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

from keras_smalldata.viz import (
    ClassActivationMaps,
    class_activation_maps,
    find_last_conv_layer,
    normalize_heatmaps,
    plot_class_activation_maps,
)
from tests.viz._reference import (
    bilinear_resize,
    grad_cam_reference,
    gradient,
    numpy,
)
from tests.viz._tf_keras_vis import linear_convnet, reference_maps
from tests.viz.conftest import (
    SIZE,
    quadrant_mass,
    region_model,
    region_pictures,
    small_convnet,
)


def minmax(maps):
    maps = np.asarray(maps, dtype="float64")
    low = maps.min(axis=(1, 2), keepdims=True)
    high = maps.max(axis=(1, 2), keepdims=True)
    return (maps - low) / np.where(high > low, high - low, 1.0)


# --- the evidence is where it should be -------------------------------------------


def test_each_picture_gets_its_own_class_and_region():
    model = region_model("softmax")
    pictures = region_pictures()
    result = class_activation_maps(model, pictures)
    assert result.layer == "features"  # found automatically
    np.testing.assert_array_equal(result.predicted, [0, 1])  # red, green
    np.testing.assert_array_equal(result.class_index, [0, 1])
    maps = result.heatmaps
    assert maps.shape == (2, SIZE, SIZE) and maps.dtype == np.float32
    assert quadrant_mass(maps[0], top_left=True) > 0.99
    assert quadrant_mass(maps[1], top_left=False) > 0.99
    np.testing.assert_allclose(maps.max(axis=(1, 2)), 1.0)
    assert np.unravel_index(maps[0].argmax(), maps[0].shape) < (16, 16)


@pytest.mark.parametrize("method", ["gradcam++", "scorecam"])
def test_other_methods_light_the_same_regions(method):
    maps = class_activation_maps(
        region_model("softmax"), region_pictures(), method=method, verbose=0
    ).heatmaps
    assert quadrant_mass(maps[0], top_left=True) > 0.99
    assert quadrant_mass(maps[1], top_left=False) > 0.99


def test_absent_class_gives_zeros_not_nan():
    # picture 0 has no green at all, picture 1 no red: the maps for those
    # classes are all zero after the ReLU and must stay zeros when normalised
    model = region_model("softmax")
    for method in ("gradcam", "gradcam++", "scorecam"):
        maps = class_activation_maps(
            model, region_pictures(), class_index=[1, 0], method=method, verbose=0
        ).heatmaps
        assert np.isfinite(maps).all()
        if (
            method != "scorecam"
        ):  # Score-CAM weights are positive: it still shows the other square
            np.testing.assert_array_equal(maps, 0.0)


def test_zero_map_normalisation():
    maps = np.zeros((2, 3, 3))
    maps[1, 0, 0] = 2.0
    maps[1, 1, 1] = -5.0
    out = normalize_heatmaps(maps)
    np.testing.assert_array_equal(out[0], 0.0)
    assert out[1, 0, 0] == 1.0 and out[1, 1, 1] == 0.0
    assert np.isfinite(normalize_heatmaps(np.full((1, 2, 2), np.nan))).all()


def test_saturated_softmax_still_has_gradients():
    model = region_model("softmax", scale=2000.0)
    pictures = region_pictures()
    probabilities = model.predict(pictures, verbose=0)
    np.testing.assert_array_equal(probabilities, [[1.0, 0.0], [0.0, 1.0]])  # saturated
    # the gradient of the probability itself vanishes: a probability-based map is empty
    assert not np.any(gradient(lambda x: model(x)[:, 0], pictures))
    maps = class_activation_maps(model, pictures).heatmaps
    assert quadrant_mass(maps[0], top_left=True) > 0.99
    assert quadrant_mass(maps[1], top_left=False) > 0.99
    assert (
        model.get_layer("classifier").activation is keras.activations.softmax
    )  # unchanged


def test_single_sigmoid_output_explains_both_classes():
    model = region_model("sigmoid")
    pictures = region_pictures()
    result = class_activation_maps(model, pictures)
    np.testing.assert_array_equal(result.predicted, [1, 0])  # red is class 1
    p = model.predict(pictures, verbose=0)[:, 0]
    np.testing.assert_allclose(result.probability, [p[0], 1 - p[1]], rtol=1e-6)
    assert quadrant_mass(result.heatmaps[0], top_left=True) > 0.99
    assert quadrant_mass(result.heatmaps[1], top_left=False) > 0.99
    # a picture with both squares: class 1 points at the red one, class 0 at the green one
    both = pictures.sum(axis=0, keepdims=True)
    for cls, top_left in ((1, True), (0, False)):
        heatmap = class_activation_maps(model, both, class_index=cls).heatmaps[0]
        assert quadrant_mass(heatmap, top_left) > 0.99
    with pytest.raises(ValueError, match="one sigmoid unit: 0 or 1"):
        class_activation_maps(model, both, class_index=2)


def test_sigmoid_matches_independent_negated_logit():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((SIZE, SIZE, 3))
    conv = keras.layers.Conv2D(6, 3, strides=2, activation="relu", name="conv")
    x = keras.layers.Flatten()(conv(inputs))
    dense = keras.layers.Dense(1, activation="sigmoid", name="out")
    model = keras.Model(inputs, dense(x))
    images = np.random.default_rng(2).uniform(size=(3, SIZE, SIZE, 3)).astype("float32")
    classes = np.array([0, 1, 0])
    kernel, bias = dense.kernel, dense.bias

    def score(features):
        flat = keras.ops.reshape(features, (features.shape[0], -1))
        logit = keras.ops.matmul(flat, kernel) + bias
        return keras.ops.concatenate([-logit, logit], axis=1)

    expected = grad_cam_reference(conv, score, images, classes)
    ours = class_activation_maps(
        model, images, class_index=classes, resize=False
    ).heatmaps
    np.testing.assert_allclose(minmax(ours), minmax(expected), atol=1e-4)


# --- agreement with independent implementations -----------------------------------


@pytest.fixture(scope="module")
def tf_keras_vis_case(tmp_path_factory):
    keras.utils.set_random_seed(7)
    model = linear_convnet()
    images = np.random.default_rng(1).uniform(size=(3, SIZE, SIZE, 3)).astype("float32")
    classes = [2, 0, 3]
    workdir = tmp_path_factory.mktemp("tf_keras_vis")
    return model, images, classes, reference_maps(model, images, classes, workdir)


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_matches_tf_keras_vis(tf_keras_vis_case, method):
    # tf-keras-vis runs under TensorFlow; our code under the backend in use
    model, images, classes, references = tf_keras_vis_case
    reference = references[method]
    assert reference.max() > 0
    ours = class_activation_maps(
        model, images, class_index=classes, method=method, resize=False
    ).heatmaps
    assert ours.shape == reference.shape == (3, 14, 14)
    np.testing.assert_allclose(minmax(ours), minmax(reference), atol=1e-4)


def test_softmax_model_matches_linear_reference():
    # the same network with softmax and without: same maps (scores before softmax)
    soft = small_convnet("soft", seed=4)
    last = soft.get_layer("out")
    feature_model = keras.Model(soft.input, soft.get_layer("conv2").output)
    head = soft.layers[soft.layers.index(soft.get_layer("conv2")) + 1 : -1]

    def score(features):
        h = features
        for layer in head:
            h = layer(h)
        return keras.ops.matmul(h, last.kernel) + last.bias

    images = (
        np.random.default_rng(3)
        .uniform(0, 255, size=(4, SIZE, SIZE, 3))
        .astype("float32")
    )
    classes = np.array([0, 1, 2, 3])
    expected = grad_cam_reference(feature_model, score, images, classes)
    assert expected.max() > 0
    ours = class_activation_maps(
        soft, images, class_index=classes, resize=False
    ).heatmaps
    np.testing.assert_allclose(minmax(ours), minmax(expected), atol=1e-4)


def test_nested_vgg16_base(nested_vgg, pictures):
    model, base = nested_vgg
    assert find_last_conv_layer(model, pictures) == "vgg16/block5_conv3"
    head = model.get_layer("predictions")
    for layer_name in ("block5_conv3", "block4_conv3"):
        feature_model = keras.Model(base.input, base.get_layer(layer_name).output)
        after = base.layers[[lyr.name for lyr in base.layers].index(layer_name) + 1 :]

        def logits(features, after=after):
            # the base's remaining layers, then the head, from `features`
            h = features
            for layer in after:
                h = layer(h)
            return (
                keras.ops.matmul(keras.ops.mean(h, axis=(1, 2)), head.kernel)
                + head.bias
            )

        features = numpy(feature_model(pictures)).astype("float32")
        classes = np.argmax(numpy(logits(features)), axis=1)
        expected = grad_cam_reference(feature_model, logits, pictures, classes)
        assert expected.max() > 0
        result = class_activation_maps(
            model,
            pictures,
            layer=None if layer_name == "block5_conv3" else layer_name,
            resize=False,
        )
        assert result.layer == f"vgg16/{layer_name}"
        np.testing.assert_array_equal(result.predicted, classes)
        np.testing.assert_allclose(minmax(result.heatmaps), minmax(expected), atol=1e-4)
    full = class_activation_maps(model, pictures).heatmaps
    assert full.shape == (3, SIZE, SIZE) and np.isfinite(full).all()


def test_sequential_and_subclassed_models():
    keras.utils.set_random_seed(5)
    seq = keras.Sequential(
        [
            keras.layers.Conv2D(4, 3, activation="relu", name="c1"),
            keras.layers.Conv2D(6, 3, activation="relu", name="c2"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax", name="out"),
        ]
    )
    seq.build(
        (None, SIZE, SIZE, 3)
    )  # built, never called: Keras' example code fails here
    images = np.random.default_rng(4).uniform(size=(2, SIZE, SIZE, 3)).astype("float32")
    conv_part = keras.Sequential(seq.layers[:3])
    tail = seq.layers[3]
    last = seq.layers[4]
    expected = grad_cam_reference(
        lambda x: conv_part(x, training=False),
        lambda a: keras.ops.matmul(tail(a), last.kernel) + last.bias,
        images,
        np.array([1, 2]),
    )
    result = class_activation_maps(seq, images, class_index=[1, 2], resize=False)
    assert result.layer == "bn"  # the conv block extends over its batch normalisation
    np.testing.assert_allclose(minmax(result.heatmaps), minmax(expected), atol=1e-4)

    class Wrapper(keras.Model):
        def __init__(self, inner, **kwargs):
            super().__init__(**kwargs)
            self.inner = inner
            self.head = keras.layers.Dense(3, activation="softmax", name="head")

        def call(self, inputs, training=False):
            return self.head(
                keras.ops.mean(self.inner(inputs, training=training), axis=(1, 2))
            )

    inner_in = keras.Input((SIZE, SIZE, 3))
    inner_out = keras.layers.Conv2D(5, 3, strides=2, activation="relu", name="conv")(
        inner_in
    )
    inner = keras.Model(inner_in, inner_out, name="inner")
    wrapper = Wrapper(inner)
    wrapper(images)
    head = wrapper.head
    expected = grad_cam_reference(
        inner,
        lambda a: (
            keras.ops.matmul(keras.ops.mean(a, axis=(1, 2)), head.kernel) + head.bias
        ),
        images,
        np.array([0, 2]),
    )
    result = class_activation_maps(wrapper, images, class_index=[0, 2], resize=False)
    assert result.layer == "inner/conv"
    np.testing.assert_allclose(minmax(result.heatmaps), minmax(expected), atol=1e-4)


def test_resize_is_bilinear_of_the_feature_map_map():
    model = small_convnet("resize", seed=2)
    images = (
        np.random.default_rng(6)
        .uniform(0, 255, size=(2, SIZE, SIZE, 3))
        .astype("float32")
    )
    small = class_activation_maps(model, images, resize=False).heatmaps
    large = class_activation_maps(model, images).heatmaps
    assert small.shape == (2, 13, 13) and large.shape == (2, SIZE, SIZE)
    expected = bilinear_resize(small.astype("float64"), SIZE)
    np.testing.assert_allclose(large, normalize_heatmaps(expected), atol=1e-6)
    single = class_activation_maps(model, images[0]).heatmaps
    assert single.shape == (1, SIZE, SIZE)
    np.testing.assert_allclose(single[0], large[0], atol=1e-6)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), scale=st.sampled_from([1e-3, 1.0, 255.0]))
def test_maps_always_in_unit_range(seed, scale):
    model = _property_model()
    images = (
        np.random.default_rng(seed).uniform(size=(3, SIZE, SIZE, 3)) * scale
    ).astype("float32")
    maps = class_activation_maps(
        model, images, method="gradcam++" if seed % 2 else "gradcam"
    ).heatmaps
    assert maps.shape == (3, SIZE, SIZE)
    assert np.isfinite(maps).all() and maps.min() >= 0.0 and maps.max() <= 1.0
    peaks = maps.max(axis=(1, 2))
    assert np.all((peaks == 0.0) | np.isclose(peaks, 1.0))


_PROPERTY_MODEL = []


def _property_model():
    if not _PROPERTY_MODEL:
        _PROPERTY_MODEL.append(small_convnet("prop", seed=9))
    return _PROPERTY_MODEL[0]


def test_bad_arguments():
    model = region_model("softmax")
    pictures = region_pictures()
    with pytest.raises(ValueError, match="out of range"):
        class_activation_maps(model, pictures, class_index=5)
    with pytest.raises(ValueError, match="2 pictures"):
        class_activation_maps(model, pictures, class_index=[0, 1, 1])
    with pytest.raises(TypeError, match="class_index"):
        class_activation_maps(model, pictures, class_index=[0.5, 1.0])
    with pytest.raises(ValueError, match="method='cam'"):
        class_activation_maps(model, pictures, method="cam")
    with pytest.raises(ValueError, match="4-D"):
        class_activation_maps(model, pictures, layer="pool")
    with pytest.raises(ValueError, match="featurse"):
        class_activation_maps(model, pictures, layer="featurse")
    dense_only = keras.Sequential(
        [keras.Input((SIZE, SIZE, 3)), keras.layers.Flatten(), keras.layers.Dense(2)]
    )
    with pytest.raises(ValueError, match="no convolution layer"):
        class_activation_maps(dense_only, pictures)
    inputs = keras.Input((SIZE, SIZE, 3))
    features = keras.layers.Conv2D(2, 3, name="c")(inputs)
    flat = keras.layers.GlobalAveragePooling2D()(features)
    two_outputs = keras.Model(
        inputs, [keras.layers.Dense(2)(flat), keras.layers.Dense(3)(flat)]
    )
    with pytest.raises(ValueError, match="several outputs"):
        class_activation_maps(two_outputs, pictures)


class PretrainedStandIn(keras.Model):
    """Like a PretrainedBase: a subclassed model, preprocessing inside, wrapping a Functional base."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        inputs = keras.Input((SIZE, SIZE, 3))
        x = keras.layers.Conv2D(6, 3, activation="relu", name="block1_conv1")(inputs)
        x = keras.layers.MaxPooling2D(name="block1_pool")(x)
        x = keras.layers.Conv2D(8, 3, activation="relu", name="block2_conv1")(x)
        x = keras.layers.MaxPooling2D(name="block2_pool")(x)
        self.base = keras.Model(inputs, x, name="tiny_vgg")
        self.last_conv_layer_name = "block2_conv1"

    def call(self, inputs, training=False):
        return self.base(inputs / 127.5 - 1.0, training=training)

    def compute_output_shape(self, input_shape):
        return self.base.compute_output_shape(input_shape)


def test_subclassed_base_nested_in_a_functional_model():
    keras.utils.set_random_seed(8)
    pretrained = PretrainedStandIn(name="pretrained")
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.GlobalAveragePooling2D()(pretrained(inputs))
    head = keras.layers.Dense(3, activation="softmax", name="head")
    model = keras.Model(inputs, head(x))
    images = (
        np.random.default_rng(8)
        .uniform(0, 255, size=(3, SIZE, SIZE, 3))
        .astype("float32")
    )
    base = pretrained.base
    features_model = keras.Model(base.input, base.get_layer("block2_conv1").output)
    pool = base.get_layer("block2_pool")
    expected = grad_cam_reference(
        lambda x: features_model(x / 127.5 - 1.0),
        lambda a: (
            keras.ops.matmul(keras.ops.mean(pool(a), axis=(1, 2)), head.kernel)
            + head.bias
        ),
        images,
        np.array([0, 1, 2]),
    )
    assert expected.max() > 0
    result = class_activation_maps(model, images, class_index=[0, 1, 2], resize=False)
    assert result.layer == "pretrained/tiny_vgg/block2_conv1"
    np.testing.assert_allclose(minmax(result.heatmaps), minmax(expected), atol=1e-4)


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "scorecam"])
def test_compiled_eager_and_chunked_runs_agree(method):
    model = small_convnet("agree", seed=12)
    images = (
        np.random.default_rng(9)
        .uniform(0, 255, size=(5, SIZE, SIZE, 3))
        .astype("float32")
    )
    compiled = class_activation_maps(model, images, method=method, verbose=0).heatmaps
    eager = class_activation_maps(
        model, images, method=method, run_eagerly=True, verbose=0
    ).heatmaps
    chunked = class_activation_maps(
        model, images, method=method, batch_size=2, verbose=0
    ).heatmaps
    np.testing.assert_allclose(eager, compiled, atol=1e-5)
    np.testing.assert_allclose(chunked, compiled, atol=1e-5)
    other_layer = class_activation_maps(
        model, images, layer="conv1", method=method, verbose=0
    ).heatmaps
    assert not np.allclose(
        other_layer, compiled
    )  # a new layer is not served from the cache


# --- how the model ends: probabilities are what the model outputs (issue 14) -------


def _trunk(seed=21):
    """Pictures -> a small conv feature map -> 3 logits, as layers shared by the variants."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((SIZE, SIZE, 3))
    features = keras.layers.Conv2D(4, 4, strides=4, activation="relu", name="features")(
        inputs
    )
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    return inputs, pooled


class _SubclassedSoftmax(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.features = keras.layers.Conv2D(4, 4, strides=4, activation="relu")
        self.dense = keras.layers.Dense(3)

    def call(self, inputs, training=False):
        pooled = keras.ops.mean(self.features(inputs), axis=(1, 2))
        return keras.ops.softmax(self.dense(pooled))


def _ending(name):
    """(model, logits model sharing its layers or None, how to turn predict() into probabilities)."""
    identity = lambda p: p  # noqa: E731
    if name == "subclassed ops.softmax":
        keras.utils.set_random_seed(21)
        model = _SubclassedSoftmax(name="subclassed")
        model(np.zeros((1, SIZE, SIZE, 3), "float32"))
        inputs = keras.Input((SIZE, SIZE, 3))
        pooled = keras.ops.mean(model.features(inputs), axis=(1, 2))
        return model, keras.Model(inputs, model.dense(pooled)), identity
    inputs, pooled = _trunk()
    units = 1 if "1 unit" in name else 3
    logits = keras.layers.Dense(units, name="scores")(pooled)
    logits_model = keras.Model(inputs, logits)
    softmax_dense = keras.layers.Dense(3, activation="softmax", name="head")
    softmax_of_logits = lambda p: keras.ops.convert_to_numpy(keras.ops.softmax(p))  # noqa: E731
    endings = {
        "ops.softmax": lambda: (keras.ops.softmax(logits), identity),
        "ops.sigmoid, 1 unit": lambda: (keras.ops.sigmoid(logits), identity),
        "ops.sigmoid, 3 units": lambda: (keras.ops.sigmoid(logits), identity),
        "sigmoid by hand, 1 unit": lambda: (
            1.0 / (1.0 + keras.ops.exp(-logits)),
            identity,
        ),
        "Activation('softmax')": lambda: (
            keras.layers.Activation("softmax")(logits),
            identity,
        ),
        "Softmax layer": lambda: (keras.layers.Softmax()(logits), identity),
        "Softmax(axis=0)": lambda: (keras.layers.Softmax(axis=0)(logits), identity),
        "ops.softmax(axis=0)": lambda: (keras.ops.softmax(logits, axis=0), identity),
        "Dense softmax, Lambda": lambda: (
            keras.layers.Lambda(lambda t: keras.ops.clip(t, 0.0, 1.0))(
                softmax_dense(pooled)
            ),
            identity,
        ),
        "Dense softmax, Identity": lambda: (
            keras.layers.Identity()(softmax_dense(pooled)),
            identity,
        ),
        "logits": lambda: (logits, softmax_of_logits),
        "logits, 1 unit": lambda: (logits, lambda p: 1.0 / (1.0 + np.exp(-p))),
        "normalised by ops": lambda: (
            (keras.ops.relu(logits) + 1.0)
            / keras.ops.sum(keras.ops.relu(logits) + 1.0, axis=-1, keepdims=True),
            identity,
        ),
    }
    outputs, to_probabilities = endings[name]()
    if "Dense softmax" in name:
        logits_model = keras.Model(inputs, keras.layers.Dense(3, name="same")(pooled))
        logits_model.get_layer("same").set_weights(softmax_dense.get_weights())
    if name == "normalised by ops":
        logits_model = None  # no logits: the log-probabilities are explained
    return keras.Model(inputs, outputs), logits_model, to_probabilities


ENDINGS = [
    "ops.softmax",
    "ops.sigmoid, 1 unit",
    "ops.sigmoid, 3 units",
    "sigmoid by hand, 1 unit",
    "Activation('softmax')",
    "Softmax layer",
    "Softmax(axis=0)",
    "ops.softmax(axis=0)",
    "Dense softmax, Lambda",
    "Dense softmax, Identity",
    "logits",
    "logits, 1 unit",
    "normalised by ops",
    "subclassed ops.softmax",
]


@pytest.mark.parametrize("name", ENDINGS)
def test_probabilities_are_what_the_model_outputs(name):
    model, logits_model, to_probabilities = _ending(name)
    images = np.random.default_rng(5).uniform(size=(4, SIZE, SIZE, 3)).astype("float32")
    outputs = np.asarray(model.predict(images, verbose=0), dtype="float64")
    probabilities = np.asarray(to_probabilities(outputs), dtype="float64")
    table = (
        np.concatenate([1 - probabilities, probabilities], axis=1)
        if probabilities.shape[1] == 1
        else probabilities
    )
    result = class_activation_maps(
        model, images, class_index=[0, 1, 0, 1], resize=False
    )
    rows = np.arange(4)
    np.testing.assert_array_equal(result.predicted, table.argmax(axis=1))
    np.testing.assert_allclose(
        result.probability, table[rows, result.predicted], rtol=1e-5
    )
    np.testing.assert_allclose(
        result.class_probability, table[rows, [0, 1, 0, 1]], rtol=1e-5
    )
    if logits_model is not None:
        # the score explained is the logit before the squashing, not a probability
        expected = class_activation_maps(
            logits_model, images, class_index=[0, 1, 0, 1], resize=False
        ).heatmaps
        np.testing.assert_allclose(result.heatmaps, expected, atol=1e-5)


def test_an_unseen_squashing_of_one_unit_is_taken_as_a_probability_with_a_warning():
    inputs, pooled = _trunk()
    logit = keras.layers.Dense(1)(pooled)
    # a sigmoid of a tensor no layer outputs: the library cannot know it is one
    model = keras.Model(inputs, keras.ops.sigmoid(3.0 * logit + 0.1))
    images = np.random.default_rng(5).uniform(size=(2, SIZE, SIZE, 3)).astype("float32")
    with pytest.warns(UserWarning, match="taken as a probability"):
        result = class_activation_maps(model, images)
    p = model.predict(images, verbose=0)[:, 0]
    np.testing.assert_allclose(
        result.probability, np.where(p > 0.5, p, 1 - p), rtol=1e-5
    )


# --- compiled passes use the model's current weights --------------------------


@pytest.mark.parametrize("method", ["gradcam", "scorecam"])
def test_a_cached_compiled_pass_sees_new_weights(method):
    model = small_convnet("retrained", seed=30)
    images = (
        np.random.default_rng(2)
        .uniform(0, 255, size=(3, SIZE, SIZE, 3))
        .astype("float32")
    )
    before = class_activation_maps(model, images, method=method, verbose=0)
    # new weights, as after more training; the compiled pass is reused from the cache
    other = small_convnet("other", seed=31)
    model.set_weights(other.get_weights())
    after = class_activation_maps(model, images, method=method, verbose=0)
    eager = class_activation_maps(
        model, images, method=method, verbose=0, run_eagerly=True
    )
    expected = other.predict(images, verbose=0)
    np.testing.assert_allclose(after.heatmaps, eager.heatmaps, atol=1e-5)
    np.testing.assert_allclose(
        after.probability, expected[np.arange(3), after.predicted], rtol=1e-5
    )
    assert not np.allclose(after.heatmaps, before.heatmaps, atol=1e-3)


# --- compiled passes follow the model they were made for ----------------------


def _changing_model():
    keras.utils.set_random_seed(40)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="out")(x)
    return keras.Model(inputs, outputs)


def _changing_pictures():
    return (
        np.random.default_rng(5)
        .uniform(-1, 1, size=(3, SIZE, SIZE, 3))
        .astype("float32")
    )


LAYER_CHANGES = {
    "feature activation": lambda m: setattr(
        m.get_layer("conv"), "activation", keras.activations.linear
    ),
    "output activation": lambda m: setattr(
        m.get_layer("out"), "activation", keras.activations.sigmoid
    ),
}


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "scorecam"])
@pytest.mark.parametrize("change", sorted(LAYER_CHANGES))
def test_a_compiled_pass_follows_a_changed_layer(change, method):
    """Issue 23: after model.get_layer(...).activation = ..., the old compiled pass answered."""
    model, images = _changing_model(), _changing_pictures()
    before = class_activation_maps(model, images, method=method, verbose=0)
    LAYER_CHANGES[change](model)
    after = class_activation_maps(model, images, method=method, verbose=0)
    eager = class_activation_maps(
        model, images, method=method, verbose=0, run_eagerly=True
    )
    outputs = numpy(model(images, training=False))
    rows = np.arange(3)
    np.testing.assert_allclose(
        after.probability, outputs[rows, after.predicted], rtol=1e-5
    )
    np.testing.assert_allclose(after.heatmaps, eager.heatmaps, atol=1e-5)
    assert not np.allclose(after.probability, before.probability, rtol=1e-3)


def test_a_compiled_pass_follows_a_sequential_model_that_changed():
    keras.utils.set_random_seed(41)
    model = keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 3)),
            keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
            keras.layers.GlobalAveragePooling2D(name="pool"),
            keras.layers.Dense(3, activation="softmax", name="three"),
        ]
    )
    images = _changing_pictures()
    assert class_activation_maps(model, images).predicted.max() < 3
    model.pop()
    model.add(keras.layers.Dense(2, activation="softmax", name="two"))
    after = class_activation_maps(model, images)
    outputs = numpy(model(images, training=False))
    assert outputs.shape == (3, 2)
    np.testing.assert_allclose(
        after.probability, outputs[np.arange(3), after.predicted], rtol=1e-5
    )
    with pytest.raises(ValueError, match="out of range"):
        class_activation_maps(model, images, class_index=2)


def test_a_new_compiled_pass_only_when_the_model_changed(monkeypatch):
    from keras_smalldata.viz import cam

    built = []
    original = cam.compile_for

    def counting(*args, **kwargs):
        built.append(args[1])
        return original(*args, **kwargs)

    monkeypatch.setattr(cam, "compile_for", counting)
    model, images = _changing_model(), _changing_pictures()
    class_activation_maps(model, images)
    class_activation_maps(model, images)
    assert len(built) == 1  # traced once, then reused
    model.get_layer("conv").trainable = False  # a trainable state
    class_activation_maps(model, images)
    class_activation_maps(model, images)
    assert len(built) == 2
    model.get_layer("out").activation = keras.activations.linear  # a layer
    class_activation_maps(model, images)
    assert len(built) == 3


def test_empty_batch_is_refused_with_its_shape():
    with pytest.raises(
        ValueError, match=r"`images` holds no pictures: shape \(0, 32, 32, 3\)"
    ):
        class_activation_maps(
            region_model("softmax"), np.zeros((0, SIZE, SIZE, 3), "float32")
        )


def test_a_dataset_is_refused_with_what_to_pass():
    import tensorflow as tf

    pictures = region_pictures()
    dataset = tf.data.Dataset.from_tensor_slices((pictures, np.array([0, 1]))).batch(2)
    for source in (dataset, dataset.unbatch(), iter(dataset), (p for p in pictures)):
        with pytest.raises(TypeError, match="pass arrays, not a dataset") as info:
            class_activation_maps(region_model("softmax"), source)
        assert "images, labels = next(iter(dataset))" in str(info.value)
    with pytest.raises(TypeError, match="different sizes"):
        class_activation_maps(region_model("softmax"), [pictures[0], pictures[0, :16]])


# --- the figure ---------------------------------------------------------------


def _maps(method="gradcam"):
    """A ClassActivationMaps for the two region pictures, written by hand (no model)."""
    heatmaps = np.zeros((2, SIZE, SIZE), "float32")
    heatmaps[0, :16, :16] = 1.0
    heatmaps[1, 16:, 16:] = 1.0
    return ClassActivationMaps(
        heatmaps=heatmaps,
        class_index=np.array([0, 0]),
        predicted=np.array([0, 1]),
        probability=np.array([0.75, 0.5], "float32"),
        class_probability=np.array([0.75, 0.5], "float32"),
        layer="features",
        method=method,
    )


def test_plot_class_activation_maps_draws_the_given_maps():
    figure = plot_class_activation_maps(
        _maps(), region_pictures(), class_names=["red", "green"]
    )
    assert isinstance(figure, Figure) and len(figure.axes) == 6
    titles = [ax.get_title() for ax in figure.axes]
    assert titles == [
        "predicted: red (0.75)",
        "Grad-CAM for red\nfeatures",
        "overlay",
        "predicted: green (0.50)",
        "Grad-CAM for red\nfeatures",
        "overlay",
    ]
    one = plot_class_activation_maps(
        dataclasses.replace(
            _maps("gradcam++"),
            **{
                key: getattr(_maps(), key)[:1]
                for key in (
                    "heatmaps",
                    "class_index",
                    "predicted",
                    "probability",
                    "class_probability",
                )
            },
        ),
        region_pictures()[0],
    )
    assert len(one.axes) == 3
    assert one.axes[1].get_title() == "Grad-CAM++ for class 0\nfeatures"


def test_plot_class_activation_maps_of_class_activation_maps():
    model = region_model("softmax")
    maps = class_activation_maps(model, region_pictures())
    figure = plot_class_activation_maps(
        maps, region_pictures(), class_names=["red", "green"]
    )
    probabilities = model.predict(region_pictures(), verbose=0)
    titles = [ax.get_title() for ax in figure.axes]
    assert titles[0] == f"predicted: red ({probabilities[0, 0]:.2f})"
    assert titles[4] == "Grad-CAM for green\nfeatures"


def test_plot_class_activation_maps_refuses_what_does_not_match():
    with pytest.raises(TypeError, match="must be the ClassActivationMaps"):
        plot_class_activation_maps(np.zeros((2, SIZE, SIZE)), region_pictures())
    with pytest.raises(ValueError, match="holds 1 pictures but `maps` has 2 heatmaps"):
        plot_class_activation_maps(_maps(), region_pictures()[:1])


def test_progress_bar_only_when_verbose(capsys):
    model = region_model("softmax")
    class_activation_maps(model, region_pictures(), method="scorecam")
    assert capsys.readouterr().out == ""
    class_activation_maps(model, region_pictures(), batch_size=1, verbose=1)
    assert "2/2" in capsys.readouterr().out
    with pytest.raises(ValueError, match="`verbose` must be one of"):
        class_activation_maps(model, region_pictures(), verbose="auto")
