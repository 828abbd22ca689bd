"""Small models with known structure shared by the viz tests."""

import keras
import numpy as np
import pytest

SIZE = 32


def region_model(head: str = "softmax", scale: float = 1.0) -> keras.Model:
    """A model whose evidence sits where the colours are.

    ``features`` (a 4x4, stride-4 convolution) has channel 0 = mean red and
    channel 1 = mean green of each 4x4 cell. Class 0 is "red", class 1 is
    "green" (softmax head: logits = scale * [mean red, mean green]); the
    sigmoid head has one unit whose logit is scale * (mean red - mean green),
    so class 1 is red and class 0 is green.
    """
    inputs = keras.Input((SIZE, SIZE, 3), name="pixels")
    features = keras.layers.Conv2D(
        2, 4, strides=4, use_bias=False, activation="relu", name="features"
    )
    x = keras.layers.GlobalAveragePooling2D(name="pool")(features(inputs))
    if head == "softmax":
        dense = keras.layers.Dense(2, activation="softmax", name="classifier")
        weights = scale * np.eye(2, dtype="float32")
    elif head == "sigmoid":
        dense = keras.layers.Dense(1, activation="sigmoid", name="classifier")
        weights = scale * np.array([[1.0], [-1.0]], dtype="float32")
    elif head == "linear":
        dense = keras.layers.Dense(2, name="classifier")
        weights = scale * np.eye(2, dtype="float32")
    else:
        raise ValueError(head)
    outputs = dense(x)
    model = keras.Model(inputs, outputs, name=f"region_{head}")
    kernel = np.zeros((4, 4, 3, 2), dtype="float32")
    kernel[:, :, 0, 0] = 1 / 16
    kernel[:, :, 1, 1] = 1 / 16
    features.set_weights([kernel])
    dense.set_weights([weights, np.zeros(weights.shape[1], dtype="float32")])
    return model


def region_pictures() -> np.ndarray:
    """Picture 0: a red square in the top-left quadrant; picture 1: a green one bottom-right."""
    pictures = np.zeros((2, SIZE, SIZE, 3), dtype="float32")
    pictures[0, 4:12, 4:12, 0] = 1.0
    pictures[1, 20:28, 20:28, 1] = 1.0
    return pictures


def quadrant_mass(heatmap: np.ndarray, top_left: bool) -> float:
    half = SIZE // 2
    part = heatmap[:half, :half] if top_left else heatmap[half:, half:]
    return float(part.sum() / heatmap.sum())


@pytest.fixture(scope="session")
def nested_vgg():
    """VGG16 (random weights, 32 px) nested in a user's Functional model with a softmax head."""
    keras.utils.set_random_seed(1)
    base = keras.applications.VGG16(
        weights=None, include_top=False, input_shape=(SIZE, SIZE, 3)
    )
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.GlobalAveragePooling2D(name="gap")(base(inputs))
    outputs = keras.layers.Dense(3, activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, outputs, name="classifier")
    return model, base


@pytest.fixture(scope="session")
def pictures():
    return (
        np.random.default_rng(0)
        .uniform(0, 255, size=(3, SIZE, SIZE, 3))
        .astype("float32")
    )


def same_weights_on_every_backend(model: keras.Model, seed: int) -> keras.Model:
    """Sets every kernel from a NumPy generator (Glorot uniform), so the model is the same
    on TensorFlow, JAX and PyTorch; 1-D weights (biases, normalisation) keep their
    constant initial values."""
    rng = np.random.default_rng(seed)
    weights = []
    for value in model.get_weights():
        if value.ndim >= 2:
            fan_in = int(np.prod(value.shape[:-1]))
            limit = np.sqrt(6.0 / (fan_in + value.shape[-1]))
            value = rng.uniform(-limit, limit, size=value.shape).astype(value.dtype)
        weights.append(value)
    model.set_weights(weights)
    return model


def small_convnet(name="small", seed=0) -> keras.Model:
    """Conv-pool-conv with a positive bias (ReLUs alive at a grey start), softmax head.

    Its weights come from NumPy, the same on every backend."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(
        8,
        3,
        activation="relu",
        bias_initializer=keras.initializers.Constant(0.05),
        name="conv1",
    )(x)
    x = keras.layers.MaxPooling2D(name="pool1")(x)
    x = keras.layers.Conv2D(
        16,
        3,
        activation="relu",
        bias_initializer=keras.initializers.Constant(0.05),
        name="conv2",
    )(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(6, activation="relu", name="hidden")(x)
    outputs = keras.layers.Dense(4, activation="softmax", name="out")(x)
    return same_weights_on_every_backend(keras.Model(inputs, outputs, name=name), seed)
