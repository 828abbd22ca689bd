"""tf-keras-vis's Grad-CAM and Grad-CAM++ as references, run under TensorFlow.

tf-keras-vis is written for TensorFlow. Under the JAX or PyTorch backend the
reference runs in a subprocess with ``KERAS_BACKEND=tensorflow``, on the same
weights and pictures, while the library's code runs under the backend in use.

Usage as a script: ``python -m tests.viz._tf_keras_vis inputs.npz outputs.npz``.
"""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np

SIZE = 32
METHODS = ("gradcam", "gradcam++")


def linear_convnet() -> keras.Model:
    """Two convolutions and a linear head (logits), layer "conv2" explained."""
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(12, 3, strides=2, activation="relu", name="conv2")(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(4, name="logits")(x)
    return keras.Model(inputs, outputs)


def _reference_in_process(weights, images, classes) -> dict:
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.utils.scores import CategoricalScore

    model = linear_convnet()
    model.set_weights(weights)
    maps = {}
    for method, visualizer in zip(METHODS, (Gradcam, GradcamPlusPlus)):
        maps[method] = np.asarray(
            visualizer(model)(
                CategoricalScore([int(c) for c in classes]),
                images,
                penultimate_layer="conv2",
                expand_cam=False,
                normalize_cam=False,
            )
        )
    return maps


def reference_maps(model: keras.Model, images, classes, workdir: Path) -> dict:
    """{method: maps} from tf-keras-vis for ``model``'s weights, under TensorFlow."""
    weights = [np.asarray(w) for w in model.get_weights()]
    if keras.backend.backend() == "tensorflow":
        return _reference_in_process(weights, images, classes)
    inputs, outputs = workdir / "inputs.npz", workdir / "outputs.npz"
    arrays = {f"w{i}": w for i, w in enumerate(weights)}
    np.savez(inputs, images=images, classes=np.asarray(classes), **arrays)
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    subprocess.run(
        [sys.executable, "-m", "tests.viz._tf_keras_vis", str(inputs), str(outputs)],
        check=True,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
    )
    with np.load(outputs) as stored:
        return {method: stored[method] for method in METHODS}


def _main(inputs: str, outputs: str) -> None:
    with np.load(inputs) as stored:
        count = len([k for k in stored.files if k.startswith("w")])
        weights = [stored[f"w{i}"] for i in range(count)]
        maps = _reference_in_process(weights, stored["images"], stored["classes"])
    np.savez(outputs, **maps)


if __name__ == "__main__":
    _main(*sys.argv[1:3])
