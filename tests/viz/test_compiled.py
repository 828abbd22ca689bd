"""The model signature that keys the compiled passes: equal while nothing changed, new otherwise."""

import gc

import keras
import numpy as np
import pytest

from keras_smalldata._function_cache import FunctionCache, model_signature
from keras_smalldata.viz import class_activation_maps, filter_patterns
from tests.viz.conftest import SIZE, small_convnet


class Scaled(keras.Model):
    """A subclassed model whose call reads a plain attribute."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = keras.layers.Conv2D(4, 3, activation="relu", name="conv")
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.dense = keras.layers.Dense(2, name="logits")
        self.scale = 2.0

    def call(self, inputs):
        return self.dense(self.pool(self.conv(inputs))) * self.scale


def _pictures(count=2):
    return np.random.default_rng(0).uniform(0, 255, (count, SIZE, SIZE, 3)).astype("float32")


def _library_model():
    """A PretrainedBase and a random augmentation layer inside a user's model."""
    from keras_smalldata.augment import RandomChannelShift
    from keras_smalldata.pretrained import PretrainedBase

    base = PretrainedBase("mobilenet_v2", input_shape=(SIZE, SIZE, 3), weights=None)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = RandomChannelShift(10.0, seed=1)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(base(x))
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))


def _scaled():
    model = Scaled()
    model(_pictures(1))
    return model


@pytest.mark.parametrize("make", [small_convnet, _library_model, _scaled])
def test_signature_is_the_same_after_calls_and_visualisations(make):
    model = make()
    first = model_signature(model)
    class_activation_maps(model, _pictures(), layer=None if make is not _scaled else "conv")
    filter_patterns(model, "conv" if make is _scaled else model.layers[-2].name
                    if make is small_convnet else "mobilenetv2/Conv1",
                    [0], steps=1, restarts=0, verbose=0, image_size=SIZE)
    model.predict(_pictures(), verbose=0)
    assert model_signature(model) == first


CHANGES = {
    "activation": lambda m: setattr(m.get_layer("conv2"), "activation", keras.activations.tanh),
    "trainable": lambda m: setattr(m.get_layer("conv1"), "trainable", False),
    "config": lambda m: setattr(m.get_layer("pool1"), "pool_size", (1, 1)),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_signature_changes_with_a_layer(change):
    model = small_convnet("signed", seed=3)
    before = model_signature(model)
    CHANGES[change](model)
    assert model_signature(model) != before


def test_signature_changes_with_the_layers_and_weights_of_a_sequential_model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="a")])
    before = model_signature(model)
    model.add(keras.layers.Dense(2, name="b"))
    added = model_signature(model)
    assert added != before
    model.pop()
    model.add(keras.layers.Dense(2, name="b"))  # same config, a new layer and new weights
    assert model_signature(model) != added


def test_signature_of_a_subclassed_model_follows_its_attributes():
    model = _scaled()
    before = model_signature(model)
    assert model_signature(model) == before
    model.scale = 3.0
    assert model_signature(model) != before


def test_function_cache_builds_again_only_for_another_signature():
    cache = FunctionCache(size=2)
    model = small_convnet("cached", seed=4)
    built = []

    def build():
        built.append(object())
        return built[-1]

    first = cache.get(model, ("a",), build)
    assert cache.get(model, ("a",), build) is first and len(built) == 1
    model.get_layer("conv1").activation = keras.activations.linear
    second = cache.get(model, ("a",), build)
    assert second is not first and len(built) == 2
    assert cache.get(model, ("a",), build) is second
    # Given the signature, the cache does not compute it.
    assert cache.get(model, ("a",), build, signature=model_signature(model)) is second


def test_function_cache_never_serves_a_model_that_is_gone():
    cache = FunctionCache(size=4)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    cache.get(model, (), lambda: "old")
    key = id(model)
    del model
    gc.collect()
    other = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    value = cache.get(other, (), lambda: "new")
    assert value == "new" or id(other) != key


def _batchnorm_convnet(seed=5):
    """Conv -> BatchNormalization -> ReLU twice, with statistics far from the defaults."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(6, 3, use_bias=False, name="conv1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU(6.0, name="relu1")(x)
    x = keras.layers.Conv2D(8, 3, strides=2, use_bias=False, name="conv2")(x)
    x = keras.layers.BatchNormalization(epsilon=1e-5, center=False, name="bn2")(x)
    x = keras.layers.ReLU(name="relu2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="out")(x))
    rng = np.random.default_rng(seed)
    for name in ("bn1", "bn2"):
        layer = model.get_layer(name)
        layer.set_weights([
            rng.uniform(0.5, 2.0, w.shape).astype("float32") if "variance" in w.path
            else rng.normal(0.0, 0.5, w.shape).astype("float32") + (1.0 if "gamma" in w.path else 0.0)
            for w in layer.weights
        ])
    return model


def test_fused_batch_normalization_gives_the_layers_values():
    import keras_smalldata.viz._compiled as compiled

    model = _batchnorm_convnet()
    images = _pictures(3) / 255.0
    expected = keras.ops.convert_to_numpy(model(images, training=False))
    run = compiled.compile_for(model, lambda x: model(x, training=False))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(run(images)), expected, rtol=1e-5,
                               atol=1e-6)
    # Restored: the layers' own call again, as their class defines it.
    assert all("call" not in vars(layer) for layer in model.layers)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        def forward(x):
            with compiled.fused_batch_normalization(model):
                return model(x, training=False)

        graph = tf.function(forward).get_concrete_function(tf.TensorSpec((None, SIZE, SIZE, 3)))
        kinds = {op.type for op in graph.graph.get_operations()}
        assert "FusedBatchNormV3" in kinds
    # A layer in training mode computes batch statistics: its own call.
    with compiled.fused_batch_normalization(model):
        training = keras.ops.convert_to_numpy(model(images, training=True))
    assert not np.allclose(training, expected, atol=1e-3)


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_compiled_maps_of_a_batchnorm_model_equal_the_eager_ones(method):
    model = _batchnorm_convnet()
    images = _pictures(3) / 255.0
    compiled = class_activation_maps(model, images, layer="relu1", method=method)
    eager = class_activation_maps(model, images, layer="relu1", method=method, run_eagerly=True)
    assert compiled.heatmaps.max() == 1.0
    np.testing.assert_allclose(compiled.heatmaps, eager.heatmaps, atol=1e-5)
    np.testing.assert_allclose(compiled.probability, eager.probability, rtol=1e-5)
    patterns = filter_patterns(model, "conv2", [0, 1], steps=3, restarts=0, verbose=0,
                               deprocess=False, seed=1, value_range=(0, 1))
    eager_patterns = filter_patterns(model, "conv2", [0, 1], steps=3, restarts=0, verbose=0,
                                     deprocess=False, seed=1, value_range=(0, 1),
                                     run_eagerly=True)
    np.testing.assert_allclose(np.asarray(patterns), np.asarray(eager_patterns), atol=1e-4)
