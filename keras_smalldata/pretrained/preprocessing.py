"""The ImageNet input preprocessing of `keras.applications`, as a layer."""

from __future__ import annotations

from typing import Any

import keras

from keras_smalldata import _arguments as args
from keras_smalldata._types import Shape, Tensor
from keras_smalldata.augment import _tf_data

PREPROCESSING_LAYER_MODES = ("caffe", "tf", "torch", "none")

# The constants of keras.applications.imagenet_utils.
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)


@keras.saving.register_keras_serializable(package="keras_smalldata")
class ImageNetPreprocessing(keras.layers.Layer):
    """Applies a `keras.applications` family's ``preprocess_input`` inside a model.

    The layer takes pictures with pixel values in **[0, 255]** (any real or
    integer dtype, e.g. straight from `keras.utils.image_dataset_from_directory`)
    and returns what the pretrained network was trained on, computed exactly as
    ``keras.applications.imagenet_utils.preprocess_input(x, mode=mode)``:

    - ``"caffe"`` (VGG16/19, ResNet v1): RGB -> BGR, then the ImageNet mean
      ``[103.939, 116.779, 123.68]`` (BGR) is subtracted; no scaling.
    - ``"tf"`` (Inception, Xception, MobileNet v1/v2, ResNet v2, NASNet):
      ``x / 127.5 - 1``, i.e. [-1, 1].
    - ``"torch"`` (DenseNet): ``x / 255``, then ImageNet mean
      ``[0.485, 0.456, 0.406]`` and std ``[0.229, 0.224, 0.225]`` per channel.
    - ``"none"``: no preprocessing, only the cast (the families whose model
      rescales itself: EfficientNet, EfficientNetV2, ConvNeXt, MobileNetV3;
      or pictures already preprocessed).

    Feeding pictures already scaled to [0, 1] is the classic silent error: the
    network then sees nearly black images. This layer is the same in training
    and inference, has no weights, and is safe in `tf.data` pipelines
    (``dataset.map(layer)``) under every backend: there it computes with
    TensorFlow, as Keras' own preprocessing layers do.

    Input shape:
        ``(..., height, width, 3)`` (channels last). ``"caffe"`` and
        ``"torch"`` refuse other channel counts (a ValueError naming the
        shape): their constants are per RGB channel.

    Output shape:
        Same as the input, in the layer's compute dtype (float32 by default).

    Args:
        mode: One of ``"caffe"``, ``"tf"``, ``"torch"``, ``"none"``.
        **kwargs: Base layer arguments (``name``, ``dtype``).

    Example:

    ```python
    import numpy as np
    layer = ImageNetPreprocessing("tf")
    layer(np.full((1, 2, 2, 3), 255.0))[0, 0, 0]  # -> [1., 1., 1.]
    ```
    """

    def __init__(self, mode: str = "caffe", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mode = args.check_choice("mode", mode, PREPROCESSING_LAYER_MODES)
        self.supports_masking = True
        self.built = True

    def __call__(self, inputs: Tensor, *call_args: Any, **kwargs: Any) -> Tensor:
        if _tf_data.runs_in_tf_data(inputs):
            # Inside tf.data under JAX or PyTorch, Keras' __call__ would turn the
            # TensorFlow tensor into one of the backend's, which a tf.data graph
            # cannot hold: compute with TensorFlow directly.
            return self.call(inputs)
        return super().__call__(inputs, *call_args, **kwargs)

    def call(self, inputs: Tensor) -> Tensor:
        self._check_channels(inputs.shape)
        xp = _tf_data.numpy_ops_for(inputs)
        dtype = self.compute_dtype
        x = xp.array(inputs, dtype=dtype)
        if self.mode == "none":
            return x
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "torch":
            mean = xp.array(_TORCH_MEAN, dtype=dtype)
            std = xp.array(_TORCH_STD, dtype=dtype)
            return (x / 255.0 - mean) / std
        # caffe: RGB -> BGR, then zero-centre each channel.
        return xp.flip(x, axis=-1) - xp.array(_CAFFE_MEAN_BGR, dtype=dtype)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        self._check_channels(input_shape)
        return tuple(input_shape)

    def _check_channels(self, shape) -> None:
        """"caffe" and "torch" have one constant per RGB channel: they need 3 channels."""
        if self.mode not in ("caffe", "torch") or not shape:
            return
        channels = shape[-1]
        if channels is None or channels == 3:
            return
        raise ValueError(
            f"ImageNetPreprocessing({self.mode!r}) needs RGB pictures, 3 channels on the "
            f"last axis (one ImageNet {'mean' if self.mode == 'caffe' else 'mean and std'} "
            f"per channel). Received: pictures of shape {tuple(shape)} ({channels} "
            "channels). For RGBA pictures drop the alpha channel (pictures[..., :3], or "
            "load them with color_mode='rgb'); for grey ones repeat the channel "
            "(keras.ops.repeat(pictures, 3, axis=-1), or color_mode='rgb')."
        )

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"mode": self.mode})
        return config
