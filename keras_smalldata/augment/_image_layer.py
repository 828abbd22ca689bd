"""The base of this package's picture layers, on public Keras API only.

`ImageLayer` gives a layer what Keras' own image preprocessing layers have,
without Keras' private base class:

- one picture ``(height, width, channels)`` or a batch, uint8 or float, and
  dicts ``{"images": ..., "labels": ..., "segmentation_masks": ...}``;
- a clear error for an input that is not pictures (text, a 2-D array...);
- use inside ``tf.data`` (``dataset.map(layer)``) under every backend: under
  JAX and PyTorch the layer gets TensorFlow tensors there, and computes with
  TensorFlow (``keras.layers.Layer.__call__`` would try to turn them into the
  backend's tensors).

`RandomImageLayer` adds the random part: identity at inference, one draw per
picture from the layer's `keras.random.SeedGenerator` (inside ``tf.data``,
from the TensorFlow generator of `_tf_data_random`); ``seed=`` makes the
sequence of draws reproducible, and `RandomImageLayer.reseed` restarts it.
The transformation is written once as a pure function of the pictures and the
draws, compiled with XLA where it pays.
"""

from __future__ import annotations

import random
import weakref
from typing import Any

import keras
import numpy as np

from keras_smalldata import _arguments as args
from keras_smalldata._function_cache import FunctionCache
from keras_smalldata._types import Shape, Tensor
from keras_smalldata.augment import _tf_data, _tf_data_random

DICT_KEYS = ("images", "labels", "segmentation_masks", "bounding_boxes")
DATA_FORMATS = ("channels_last", "channels_first")
_REAL_DTYPE_PREFIXES = ("uint", "int", "float", "bfloat")
# Compiled transformations, shared by the layers of one class whose compiled
# program is the same (see `RandomImageLayer._function`): XLA compiles once per
# input shape for all of them, not once per layer.
_TRANSFORMATIONS = FunctionCache(size=64)


def _ops(x):
    """`keras.ops`, or its TensorFlow twin for TensorFlow tensors under another backend."""
    return _tf_data.keras_ops_for(x)


def reseed_generator(generator: keras.random.SeedGenerator, seed: int) -> None:
    """Restarts ``generator`` from ``seed``: it then draws as ``SeedGenerator(seed)`` does.

    A `keras.random.SeedGenerator` made with ``seed`` starts from the state
    ``[seed, 0]``, held in its public ``state`` variable; this assigns that
    state.
    """
    state = generator.state
    state.assign(keras.ops.convert_to_tensor([seed, 0], dtype=state.dtype))


class _Transformation:
    """A method of a layer class, compiled once for every layer with the same static config.

    The layers that share it differ only in the setting arrays it is given,
    so whichever of them is calling traces it (the function holds no layer).
    """

    def __init__(self, name: str, ops, tensorflow_tensors: bool):
        self._caller: weakref.ref[keras.layers.Layer] | None = None

        def run(*tensors):
            layer = None if self._caller is None else self._caller()
            if layer is None:
                raise RuntimeError(f"No layer is calling the compiled _{name}.")
            return getattr(layer, f"_{name}")(ops, *tensors)

        self._compiled = _tf_data.xla_function(run, tensorflow_tensors=tensorflow_tensors)

    def for_layer(self, layer):
        """The compiled function, called on behalf of ``layer``."""

        def call(*tensors):
            self._caller = weakref.ref(layer)
            return self._compiled(*tensors)

        return call


def _shape_text(shape) -> str:
    if getattr(shape, "rank", 0) is None:
        return "unknown (not even its rank)"
    return str(tuple(None if d is None else int(d) for d in shape))


class ImageLayer(keras.layers.Layer):
    """A layer that takes pictures; see the module docstring.

    Args:
        data_format: ``"channels_last"`` or ``"channels_first"``; ``None``
            follows `keras.config.image_data_format()`.
        **kwargs: Base layer arguments (``name``, ``dtype``...).
    """

    def __init__(self, data_format: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if data_format is None:
            data_format = keras.config.image_data_format()
        self.data_format = args.check_choice("data_format", data_format, DATA_FORMATS)

    def __call__(
        self, data: Tensor | dict[str, Tensor], training: bool | None = None, **kwargs: Any
    ) -> Tensor | dict[str, Tensor]:
        if training is not None and not isinstance(training, (bool, np.bool_)):
            raise TypeError(
                f"{type(self).__name__} got training={training!r:.60}: the second "
                "argument is `training` (True or False). With (images, labels) "
                "pairs, map only the images: dataset.map(lambda x, y: "
                "(layer(x, training=True), y))."
            )
        images = self._check_input(data)
        if _tf_data.runs_in_tf_data(images):
            call = _tf_data.without_autograph(self.call)
            return call(data, training=True if training is None else training)
        if training is not None:
            # An explicit None would hide the call signature's default (True).
            kwargs["training"] = training
        return super().__call__(data, **kwargs)

    def _check_input(self, data):
        """Returns the pictures of ``data``, or raises an error that says what is accepted."""
        owner = type(self).__name__
        if isinstance(data, dict):
            if "images" not in data:
                raise ValueError(
                    f"{owner} takes a dict only with an 'images' key (and optionally "
                    f"{', '.join(repr(k) for k in DICT_KEYS[1:])}); received keys "
                    f"{sorted(map(str, data))}."
                )
            images = data["images"]
        else:
            images = data
        if isinstance(images, (str, bytes)):
            raise TypeError(
                f"{owner} takes pictures (an array or tensor of pixel values), not text. "
                f"Decode image files first, e.g. with keras.utils.load_img or "
                f"keras.utils.image_dataset_from_directory. Received: {images!r:.80}"
            )
        if not hasattr(images, "shape") or not hasattr(images, "dtype"):
            images = np.asarray(images)
        try:
            dtype = keras.backend.standardize_dtype(images.dtype)
        except (TypeError, ValueError):  # NumPy text, objects...
            dtype = str(images.dtype)
        shape = images.shape
        expected = (
            "(height, width, channels) for one picture or (batch, height, width, "
            "channels) for a batch"
            if self.data_format == "channels_last"
            else "(channels, height, width) for one picture or (batch, channels, "
            "height, width) for a batch"
        )
        if not dtype.startswith(_REAL_DTYPE_PREFIXES):
            raise TypeError(
                f"{owner} takes pictures of whole or real numbers (uint8, float32...); "
                f"received dtype={dtype} with shape {_shape_text(shape)}. Decode "
                "image files or cast the values first."
            )
        rank = shape.rank if hasattr(shape, "rank") else len(shape)
        if rank not in (3, 4):
            hint = ""
            if rank == 2:
                hint = " For one grayscale picture, add a channels axis: x[..., None]."
            elif rank is None:
                hint = " Give the tensor a known rank, e.g. with tf.ensure_shape."
            raise ValueError(
                f"{owner} takes pictures of shape {expected} ({self.data_format}); "
                f"received shape {_shape_text(shape)}.{hint}"
            )
        spatial = shape[-3:-1] if self.data_format == "channels_last" else shape[-2:]
        if any(size is not None and int(size) == 0 for size in spatial):
            raise ValueError(
                f"{owner} takes pictures of at least one pixel; received shape "
                f"{_shape_text(shape)} ({self.data_format})."
            )
        return images

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["data_format"] = self.data_format
        return config


class RandomImageLayer(ImageLayer):
    """An `ImageLayer` that draws random numbers per picture.

    Subclasses set ``draws_per_picture`` and ``compiled`` (whether the
    transformation is worth compiling with XLA), and define the pure functions
    `_draws_to_parameters` (draws -> parameters per picture), `_transform` (pictures,
    parameters -> pictures), optionally `_transform_masks`, and
    `_is_identity`. With ``compiled = True`` they also say what the compiled
    program depends on: `_static_config` (values built into it) and
    `_setting_arrays` (values fed to it, so that layers with other ranges
    share it).

    Args:
        seed: Int seed for reproducible draws, or ``None``; see `reseed`.
        data_format: See `ImageLayer`.
        **kwargs: Base layer arguments (``name``, ``dtype``...).
    """

    draws_per_picture = 1
    compiled = False

    def __init__(
        self, seed: int | None = None, data_format: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(data_format=data_format, **kwargs)
        self.seed = args.check_seed(seed)
        self.generator = keras.random.SeedGenerator(self.seed)

    def reseed(self, seed: int | None) -> None:
        """Restarts the layer's random draws from ``seed``.

        The layer then draws what a new layer made with ``seed=seed`` draws,
        in a model and inside ``tf.data`` (a ``tf.data`` pipeline already
        traced draws the restarted sequence too). Its configuration (the
        ``seed`` of ``get_config()``) stays as it was made.

        Args:
            seed: An int >= 0, or None for a new random seed.

        Raises:
            TypeError: For a seed that is not an int.
            ValueError: For a negative seed.

        Example:

        ```python
        layer = RandomChannelShift(20.0, seed=1)
        first = layer(images, training=True)
        layer.reseed(1)
        again = layer(images, training=True)  # the same draws as `first`
        ```
        """
        seed = args.check_seed(seed)
        if seed is None:
            seed = random.randint(1, 10**9)  # as keras.random.SeedGenerator(None)
        reseed_generator(self.generator, seed)
        _tf_data_random.reseed(self, seed)

    # What subclasses define.

    def _is_identity(self) -> bool:
        """True for settings that cannot change a picture."""
        return False

    def _draws_to_parameters(self, ops, draws, height, width, *settings) -> dict:
        """Turns ``(batch, draws_per_picture)`` uniform draws into parameters.

        ``settings`` are the tensors of `_setting_arrays`.
        """
        raise NotImplementedError

    def _static_config(self) -> tuple:
        """The settings a compiled transformation has built in (hashable)."""
        return (self.data_format, self.compute_dtype)

    def _setting_arrays(self) -> tuple:
        """The settings given to a compiled transformation as arrays."""
        return ()

    def _transform(self, ops, images, parameters):
        """Applies the parameters to channels-last float pictures ``(batch, h, w, c)``."""
        raise NotImplementedError

    def _transform_masks(self, ops, masks, parameters):
        """Applies the parameters to segmentation masks (default: unchanged)."""
        return masks

    def _transform_bounding_boxes(self, bounding_boxes):
        """Bounding boxes (default: unchanged)."""
        return bounding_boxes

    # The machinery.

    def _uniform(self, images, batch_size, seed=None):
        shape = (batch_size, self.draws_per_picture)
        if _tf_data.in_tf_data(images):
            return _tf_data_random.uniform(self, shape, self.seed)
        return keras.random.uniform(shape, seed=self.generator if seed is None else seed)

    def _sizes(self, ops, images):
        shape = ops.shape(images)
        if self.data_format == "channels_last":
            return shape[0], shape[1], shape[2]
        return shape[0], shape[2], shape[3]

    def _channels_last(self, ops, images):
        if self.data_format == "channels_first":
            return ops.transpose(images, (0, 2, 3, 1))
        return images

    def _channels_back(self, ops, images):
        if self.data_format == "channels_first":
            return ops.transpose(images, (0, 3, 1, 2))
        return images

    def _sizes_as_floats(self, ops, images):
        batch, height, width = self._sizes(ops, images)
        return batch, ops.cast(height, "float32"), ops.cast(width, "float32")

    def _augment(self, ops, images, draws, *settings):
        """The whole training-time computation on a batch: draws -> parameters -> pictures."""
        _, height, width = self._sizes_as_floats(ops, images)
        parameters = self._draws_to_parameters(ops, draws, height, width, *settings)
        return self._transform_pictures(ops, images, parameters)

    def _transform_pictures(self, ops, images, parameters):
        images = self._channels_last(ops, ops.cast(images, self.compute_dtype))
        return self._channels_back(ops, self._transform(ops, images, parameters))

    def _transform_masks_any_format(self, ops, masks, parameters):
        masks = self._channels_last(ops, masks)
        return self._channels_back(ops, self._transform_masks(ops, masks, parameters))

    def _function(self, name, images):
        """``self._<name>(ops, *tensors)`` for tensors like ``images``, compiled where it pays.

        With ``compiled = True`` the function is compiled with XLA once and
        shared by every layer of the same class and `_static_config` (the
        key of the library's `FunctionCache`, which holds what the program
        has built in): XLA compiles once per input shape for all of them, and
        a layer whose static config changed gets another program.
        """
        in_tf_data = _tf_data.runs_in_tf_data(images)
        ops = _ops(images)
        if not self.compiled:
            method = getattr(self, f"_{name}")
            return lambda *tensors: method(ops, *tensors)
        key = (name, in_tf_data, type(self), *self._static_config())
        transformation = _TRANSFORMATIONS.get(
            None, key, lambda: _Transformation(name, ops, in_tf_data)
        )
        return transformation.for_layer(self)

    def get_random_transformation(
        self,
        data: Tensor | dict[str, Tensor],
        training: bool = True,
        seed: int | Tensor | None = None,
    ) -> dict[str, Tensor] | None:
        """Draws the parameters of a batch, one set per picture.

        Args:
            data: A batch of pictures (or a dict with ``"images"``).
            training: With ``False``, nothing is drawn and None is returned.
            seed: Optional seed for this draw instead of the layer's generator.

        Returns:
            None when not training, else a dict of tensors with one row per
            picture (see the layer's docstring for the keys).
        """
        if not training:
            return None
        images = data["images"] if isinstance(data, dict) else data
        ops = _ops(images)
        batch, height, width = self._sizes_as_floats(ops, images)
        draws = self._uniform(images, batch, seed)
        return self._function("draws_to_parameters", images)(
            draws, height, width, *self._setting_arrays()
        )

    def transform_images(
        self,
        images: Tensor,
        transformation: dict[str, Tensor] | None,
        training: bool = True,
    ) -> Tensor:
        """Applies drawn parameters to a batch of pictures (cast to the compute dtype)."""
        # Cast before the compiled function: one program for every input dtype.
        images = _ops(images).cast(images, self.compute_dtype)
        if not training or transformation is None:
            return images
        return self._function("transform_pictures", images)(images, transformation)

    def call(
        self, data: Tensor | dict[str, Tensor], training: bool = True
    ) -> Tensor | dict[str, Tensor]:
        outputs = dict(data) if isinstance(data, dict) else {"images": data}
        images = outputs["images"]
        ops = _ops(images)
        batched = len(images.shape) == 4
        if not batched:
            images = ops.expand_dims(images, 0)
        masks = outputs.get("segmentation_masks")
        if masks is not None and not batched:
            masks = ops.expand_dims(masks, 0)
        # Cast before the compiled functions: one program for every input dtype.
        images = ops.cast(images, self.compute_dtype)
        if not training or self._is_identity():
            pass  # identity at inference
        elif masks is None and "bounding_boxes" not in outputs:
            draws = self._uniform(images, self._sizes(ops, images)[0])
            images = self._function("augment", images)(
                images, draws, *self._setting_arrays()
            )
        else:
            transformation = self.get_random_transformation(images)
            images = self.transform_images(images, transformation)
            if masks is not None:
                masks = self._function("transform_masks_any_format", masks)(
                    masks, transformation
                )
            if "bounding_boxes" in outputs:
                outputs["bounding_boxes"] = self._transform_bounding_boxes(
                    outputs["bounding_boxes"]
                )
        outputs["images"] = images if batched else images[0]
        if masks is not None:
            outputs["segmentation_masks"] = masks if batched else masks[0]
        return outputs if isinstance(data, dict) else outputs["images"]

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["seed"] = self.seed
        return config
