"""Registry of the convolutional bases in `keras.applications`.

Each `Architecture` records what a user needs to reuse a Keras application as
a conv base without reading its source: the constructor, the input
preprocessing it was trained with, its default and minimum input size, the
stable names of its blocks or stages, its last convolution layer, the layer
that produces its feature map and where its last block starts (the usual
fine-tuning boundary).

Every fact was read off the Keras 3.15 sources and checked by building each
model with ``weights=None`` (see ``tests/pretrained/check_registry_all.py``,
a slow script that rebuilds every architecture and compares it with this
table).

Naming facts worth knowing:

- Some architectures have *auto-numbered* layer names (``conv2d_94``,
  ``activation_17``...). Keras numbers them per session, so the same layer has
  another name in the next model you build. InceptionV3, InceptionResNetV2 and
  NASNet are mostly auto-numbered; MobileNetV3, NASNet and ConvNeXt even have an
  auto-numbered output layer (``output_layer`` is None for them here).
- Blocks are found with regular expressions over layer names (``block_patterns``):
  the first group of a match is the block's name (``"block5"`` for
  ``"block5_conv1"``). Families without such names (Inception, NASNet,
  MobileNet v1) have no blocks; their stable *landmarks* (``mixed8``...) are
  block outputs, used with ``freeze_through``.
"""

from __future__ import annotations

import dataclasses
import difflib
import re

PREPROCESSING_MODES = ("caffe", "tf", "torch", "builtin")


@dataclasses.dataclass(frozen=True)
class Architecture:
    """What the library knows about one `keras.applications` conv base.

    Attributes:
        name: The Keras constructor's name, e.g. ``"VGG16"``
            (``keras.applications.VGG16``).
        family: Family name, e.g. ``"vgg"``, ``"resnet_v2"``.
        module: The `keras.applications` module that holds the family's
            ``preprocess_input``, e.g. ``"vgg16"``.
        preprocessing: ``"caffe"`` (RGB->BGR, ImageNet mean subtracted, 0-255
            scale), ``"tf"`` (scaled to [-1, 1]), ``"torch"`` ([0, 1] then
            ImageNet mean/std) or ``"builtin"`` (the model itself rescales: it
            takes 0-255 pictures and its ``preprocess_input`` is a no-op).
        default_size: The ImageNet training size (pixels per side).
        min_size: The smallest input side the constructor accepts.
        default_name: The name a `PretrainedBase` gets by default.
        last_conv: Name of the last convolution layer, or None when it is
            auto-numbered (then it is found by type in each instance).
        output_layer: Name of the layer that outputs the feature map
            (``include_top=False``, no pooling), or None when auto-numbered.
        block_patterns: Regular expressions over layer names whose first group
            names a block or stage (``"block5"``, ``"conv5"``...).
        landmarks: A regular expression matching stable block-output names
            (``"mixed8"``...) in families without block names.
        last_block_start: Layer or block where the last block starts:
            ``freeze_until(last_block_start)`` trains the last block only.
        last_block_after: For families without block names, the stable
            layer that ends the second-to-last block:
            ``freeze_through(last_block_after)``.
    """

    name: str
    family: str
    module: str
    preprocessing: str
    default_size: int
    min_size: int
    default_name: str
    last_conv: str | None
    output_layer: str | None
    block_patterns: tuple[str, ...] = ()
    landmarks: str | None = None
    last_block_start: str | None = None
    last_block_after: str | None = None

    @property
    def constructor(self):
        """The `keras.applications` constructor function."""
        import keras

        return getattr(keras.applications, self.name)

    @property
    def preprocess_input(self):
        """Keras' own ``preprocess_input`` for this family (for reference)."""
        import keras

        return getattr(keras.applications, self.module).preprocess_input


_VGG_BLOCKS = (r"^(block\d+)_",)
_RESNET_BLOCKS = (r"^(conv\d)_", r"^(conv\d_block\d+)_")
_DENSENET_BLOCKS = (r"^(conv\d)_", r"^(conv\d_block\d+)_", r"^(pool\d)(?:_|$)")
_EFFICIENTNET_BLOCKS = (r"^(block\d+)[a-z]_", r"^(block\d+[a-z])_", r"^(stem|top)_")
_MOBILENET_V2_BLOCKS = (r"^(block_\d+)_", r"^(expanded_conv)_")
_MOBILENET_V3_BLOCKS = (r"^(expanded_conv(?:_\d+)?)_",)
_NASNET_LANDMARKS = r"^(?:normal_concat_\d+|reduction_concat_(?:stem|reduce)_\d+)$"


def _convnext_blocks(prefix: str) -> tuple[str, ...]:
    return (rf"^({prefix}_stage_\d)_", rf"^({prefix}_stage_\d_block_\d+)_")


def _entries() -> list[Architecture]:
    a = Architecture
    entries = [
        a("VGG16", "vgg", "vgg16", "caffe", 224, 32, "vgg16", "block5_conv3",
          "block5_pool", _VGG_BLOCKS, last_block_start="block5_conv1"),
        a("VGG19", "vgg", "vgg19", "caffe", 224, 32, "vgg19", "block5_conv4",
          "block5_pool", _VGG_BLOCKS, last_block_start="block5_conv1"),
    ]
    for depth in (50, 101, 152):
        entries.append(
            a(f"ResNet{depth}", "resnet", "resnet", "caffe", 224, 32, f"resnet{depth}",
              "conv5_block3_3_conv", "conv5_block3_out", _RESNET_BLOCKS,
              last_block_start="conv5_block1_1_conv")
        )
    for depth in (50, 101, 152):
        entries.append(
            a(f"ResNet{depth}V2", "resnet_v2", "resnet_v2", "tf", 224, 32,
              f"resnet{depth}v2", "conv5_block3_3_conv", "post_relu", _RESNET_BLOCKS,
              last_block_start="conv5_block1_preact_bn")
        )
    entries += [
        a("InceptionV3", "inception_v3", "inception_v3", "tf", 299, 75, "inception_v3",
          None, "mixed10", landmarks=r"^mixed\d+$", last_block_after="mixed8"),
        a("InceptionResNetV2", "inception_resnet_v2", "inception_resnet_v2", "tf", 299,
          75, "inception_resnet_v2", "conv_7b", "conv_7b_ac",
          landmarks=r"^(?:mixed_\w+|block(?:35|17|8)_\d+_ac|conv_7b(?:_ac)?)$",
          last_block_after="block8_9_ac"),
        a("Xception", "xception", "xception", "tf", 299, 71, "xception",
          "block14_sepconv2", "block14_sepconv2_act", _VGG_BLOCKS,
          last_block_start="block14_sepconv1"),
        a("MobileNet", "mobilenet", "mobilenet", "tf", 224, 32, "mobilenet",
          "conv_pw_13", "conv_pw_13_relu", landmarks=r"^conv_pw_\d+_relu$",
          last_block_start="conv_dw_13"),
        a("MobileNetV2", "mobilenet_v2", "mobilenet_v2", "tf", 224, 32, "mobilenetv2",
          "Conv_1", "out_relu", _MOBILENET_V2_BLOCKS, last_block_start="block_16_expand"),
        a("MobileNetV3Small", "mobilenet_v3", "mobilenet_v3", "builtin", 224, 32,
          "mobilenetv3small", "conv_1", None, _MOBILENET_V3_BLOCKS,
          last_block_start="expanded_conv_10_expand"),
        a("MobileNetV3Large", "mobilenet_v3", "mobilenet_v3", "builtin", 224, 32,
          "mobilenetv3large", "conv_1", None, _MOBILENET_V3_BLOCKS,
          last_block_start="expanded_conv_14_expand"),
    ]
    for depth, last in ((121, 16), (169, 32), (201, 32)):
        entries.append(
            a(f"DenseNet{depth}", "densenet", "densenet", "torch", 224, 32,
              f"densenet{depth}", f"conv5_block{last}_2_conv", "relu", _DENSENET_BLOCKS,
              last_block_start="conv5_block1_0_bn")
        )
    entries += [
        a("NASNetMobile", "nasnet", "nasnet", "tf", 224, 32, "nasnet_mobile",
          "separable_conv_2_normal_left5_12", None, landmarks=_NASNET_LANDMARKS,
          last_block_after="normal_concat_11"),
        a("NASNetLarge", "nasnet", "nasnet", "tf", 331, 32, "nasnet_large",
          "separable_conv_2_normal_left5_18", None, landmarks=_NASNET_LANDMARKS,
          last_block_after="normal_concat_17"),
    ]
    sizes = (224, 240, 260, 300, 380, 456, 528, 600)
    for index, size in enumerate(sizes):
        entries.append(
            a(f"EfficientNetB{index}", "efficientnet", "efficientnet", "builtin", size, 32,
              f"efficientnetb{index}", "top_conv", "top_activation", _EFFICIENTNET_BLOCKS,
              last_block_start="block7a_expand_conv")
        )
    for variant, size, last in (
        ("B0", 224, 6), ("B1", 240, 6), ("B2", 260, 6), ("B3", 300, 6),
        ("S", 384, 6), ("M", 480, 7), ("L", 480, 7),
    ):
        entries.append(
            a(f"EfficientNetV2{variant}", "efficientnet_v2", "efficientnet_v2", "builtin",
              size, 32, f"efficientnetv2_{variant.lower()}", "top_conv", "top_activation",
              _EFFICIENTNET_BLOCKS, last_block_start=f"block{last}a_expand_conv")
        )
    for size_name in ("Tiny", "Small", "Base", "Large", "XLarge"):
        prefix = f"convnext_{size_name.lower()}"
        entries.append(
            a(f"ConvNeXt{size_name}", "convnext", "convnext", "builtin", 224, 32, prefix,
              f"{prefix}_stage_3_block_2_pointwise_conv_2", None, _convnext_blocks(prefix),
              last_block_start=f"{prefix}_stage_3_block_0_depthwise_conv")
        )
    return entries


def _normalize(name: str) -> str:
    return re.sub(r"[\s_\-.]", "", name).lower()


_REGISTRY: dict[str, Architecture] = {_normalize(e.name): e for e in _entries()}


def available_architectures(family: str | None = None) -> list[str]:
    """Lists the architectures `PretrainedBase` can build.

    Args:
        family: Optional family to keep, e.g. ``"resnet"``, ``"efficientnet_v2"``.

    Returns:
        The constructor names (``"VGG16"``, ``"ResNet50V2"``...), in registry
        order (grouped by family).

    Example:

    ```python
    available_architectures("vgg")
    # ['VGG16', 'VGG19']
    ```
    """
    if family is None:
        return [e.name for e in _REGISTRY.values()]
    families = sorted({e.family for e in _REGISTRY.values()})
    if family not in families:
        raise ValueError(f"Unknown family={family!r}. Known families: {families}.")
    return [e.name for e in _REGISTRY.values() if e.family == family]


def get_architecture(name: str | Architecture) -> Architecture:
    """Looks an architecture up by name (case, ``_`` and ``-`` are ignored).

    Args:
        name: E.g. ``"VGG16"``, ``"vgg16"``, ``"resnet50_v2"``,
            ``"EfficientNetV2-B0"``, ``"convnext_tiny"``.

    Returns:
        The `Architecture`.

    Raises:
        ValueError: For an unknown name, with the closest known names.

    Example:

    ```python
    get_architecture("vgg16").preprocessing
    # 'caffe'
    ```
    """
    if isinstance(name, Architecture):
        return name
    if not isinstance(name, str):
        raise TypeError(
            f"architecture must be a name such as 'VGG16', got {type(name).__name__}: {name!r}."
        )
    key = _normalize(name)
    if key in _REGISTRY:
        return _REGISTRY[key]
    close = difflib.get_close_matches(key, list(_REGISTRY), n=3, cutoff=0.5)
    hint = [_REGISTRY[k].name for k in close]
    message = f"Unknown architecture {name!r}."
    if hint:
        message += f" Did you mean {', '.join(repr(h) for h in hint)}?"
    message += " See available_architectures() for the full list."
    raise ValueError(message)
