"""Registry of the convolutional bases in `keras.applications`: one row per architecture.

Each row is a call to `_row` with keyword arguments. A row names only what
differs from its family's defaults (`_FAMILIES`, in the spirit of timm's
``_cfg``), so adding an architecture is one row, and everything else (tests,
docs tables, look-ups) reads the table.

What a row records is what a user needs to reuse a Keras application as a conv
base without reading its source: the constructor, the input preprocessing it
was trained with, its default and minimum input size, the stable names of its
blocks or stages, its last convolution layer, the layer that produces its
feature map, where its last block starts (the usual fine-tuning boundary), and
the facts of its ImageNet weights file (the ``include_top=False`` file Keras
downloads, its origin URL and the hash Keras checks).

Every fact was read off the Keras 3.15 sources (``keras/src/applications/*.py``:
the ``get_file`` call of each constructor for the weights facts) and is checked
against the installed Keras by ``tests/pretrained/check_registry_all.py``, a slow
script that builds every architecture.

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
import re

from keras_smalldata import _arguments as args

# How pictures in [0, 255] become what the network was trained on. "none": the
# model needs no preprocessing from us (it rescales its input itself).
PREPROCESSING_MODES = ("caffe", "tf", "torch", "none")

_KERAS_APPLICATIONS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"


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
            ImageNet mean/std) or ``"none"`` (the model rescales its 0-255
            input itself; its ``preprocess_input`` is a no-op).
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
        weights_file: The name of the ImageNet weights file without the
            classifier (``include_top=False``) that Keras downloads into its
            cache, for the constructor's default options.
        weights_url: Where Keras downloads that file from.
        weights_hash: The hash Keras checks the file against (MD5 or SHA-256,
            by length), or None where Keras checks none.
        weights_vary_with: Constructor options that change which file Keras
            asks for (``("alpha", "input_shape")`` for MobileNet); empty when
            the file is always ``weights_file``.
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
    weights_file: str
    weights_url: str
    weights_hash: str | None
    block_patterns: tuple[str, ...] = ()
    landmarks: str | None = None
    last_block_start: str | None = None
    last_block_after: str | None = None
    weights_vary_with: tuple[str, ...] = ()

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
_EFFICIENTNET_BLOCKS = (r"^(block\d+)[a-z]_", r"^(block\d+[a-z])_", r"^(stem|top)_")
_NASNET_LANDMARKS = r"^(?:normal_concat_\d+|reduction_concat_(?:stem|reduce)_\d+)$"

# Family defaults: a row names only what differs from these. "weights_folder"
# is where the family's files live; a row's URL is folder + file unless the row
# gives its own "weights_url".
_FAMILIES: dict[str, dict] = {
    "vgg": dict(preprocessing="caffe", output_layer="block5_pool",
                block_patterns=_VGG_BLOCKS, last_block_start="block5_conv1"),
    "resnet": dict(module="resnet", preprocessing="caffe",
                   last_conv="conv5_block3_3_conv", output_layer="conv5_block3_out",
                   block_patterns=_RESNET_BLOCKS, last_block_start="conv5_block1_1_conv",
                   weights_folder=_KERAS_APPLICATIONS_URL + "resnet/"),
    "resnet_v2": dict(module="resnet_v2", preprocessing="tf",
                      last_conv="conv5_block3_3_conv", output_layer="post_relu",
                      block_patterns=_RESNET_BLOCKS, last_block_start="conv5_block1_preact_bn",
                      weights_folder=_KERAS_APPLICATIONS_URL + "resnet/"),
    "inception_v3": dict(module="inception_v3", preprocessing="tf", default_size=299,
                         min_size=75, weights_folder=_KERAS_APPLICATIONS_URL + "inception_v3/"),
    "inception_resnet_v2": dict(module="inception_resnet_v2", preprocessing="tf",
                                default_size=299, min_size=75,
                                weights_folder=_KERAS_APPLICATIONS_URL + "inception_resnet_v2/"),
    "xception": dict(module="xception", preprocessing="tf", default_size=299, min_size=71,
                     weights_folder=_KERAS_APPLICATIONS_URL + "xception/"),
    "mobilenet": dict(module="mobilenet", preprocessing="tf",
                      weights_folder=_KERAS_APPLICATIONS_URL + "mobilenet/",
                      weights_vary_with=("alpha", "input_shape")),
    "mobilenet_v2": dict(module="mobilenet_v2", preprocessing="tf",
                         block_patterns=(r"^(block_\d+)_", r"^(expanded_conv)_"),
                         weights_folder=_KERAS_APPLICATIONS_URL + "mobilenet_v2/",
                         weights_vary_with=("alpha", "input_shape")),
    "mobilenet_v3": dict(module="mobilenet_v3", preprocessing="none", last_conv="conv_1",
                         output_layer=None, block_patterns=(r"^(expanded_conv(?:_\d+)?)_",),
                         weights_folder=_KERAS_APPLICATIONS_URL + "mobilenet_v3/",
                         weights_vary_with=("alpha", "minimalistic")),
    "densenet": dict(module="densenet", preprocessing="torch", output_layer="relu",
                     block_patterns=(r"^(conv\d)_", r"^(conv\d_block\d+)_", r"^(pool\d)(?:_|$)"),
                     last_block_start="conv5_block1_0_bn",
                     weights_folder=_KERAS_APPLICATIONS_URL + "densenet/"),
    "nasnet": dict(module="nasnet", preprocessing="tf", output_layer=None,
                   landmarks=_NASNET_LANDMARKS,
                   weights_folder=_KERAS_APPLICATIONS_URL + "nasnet/"),
    "efficientnet": dict(module="efficientnet", preprocessing="none", last_conv="top_conv",
                         output_layer="top_activation", block_patterns=_EFFICIENTNET_BLOCKS,
                         last_block_start="block7a_expand_conv",
                         weights_folder="https://storage.googleapis.com/keras-applications/"),
    "efficientnet_v2": dict(module="efficientnet_v2", preprocessing="none",
                            last_conv="top_conv", output_layer="top_activation",
                            block_patterns=_EFFICIENTNET_BLOCKS,
                            last_block_start="block6a_expand_conv",
                            weights_folder=_KERAS_APPLICATIONS_URL + "efficientnet_v2/"),
    "convnext": dict(module="convnext", preprocessing="none", output_layer=None,
                     weights_folder=_KERAS_APPLICATIONS_URL + "convnext/"),
}
_ROW_DEFAULTS = dict(default_size=224, min_size=32, last_conv=None, output_layer=None)


def _row(name: str, family: str, **facts) -> Architecture:
    """One architecture: its family's defaults, overridden by ``facts``."""
    merged = {**_ROW_DEFAULTS, **_FAMILIES[family], **facts}
    folder = merged.pop("weights_folder", None)
    if "weights_url" not in merged:
        merged["weights_url"] = folder + merged["weights_file"]
    merged.setdefault("default_name", name.lower())
    return Architecture(name=name, family=family, **merged)


def _convnext(size: str, sha256: str) -> Architecture:
    prefix = f"convnext_{size.lower()}"
    return _row(
        f"ConvNeXt{size}", "convnext", default_name=prefix,
        last_conv=f"{prefix}_stage_3_block_2_pointwise_conv_2",
        block_patterns=(rf"^({prefix}_stage_\d)_", rf"^({prefix}_stage_\d_block_\d+)_"),
        last_block_start=f"{prefix}_stage_3_block_0_depthwise_conv",
        weights_file=f"{prefix}_notop.h5", weights_hash=sha256,
    )


_ROWS = (
    _row("VGG16", "vgg", module="vgg16", last_conv="block5_conv3",
         weights_file="vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
         weights_url=_KERAS_APPLICATIONS_URL
         + "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
         weights_hash="6d6bbae143d832006294945121d1f1fc"),
    _row("VGG19", "vgg", module="vgg19", last_conv="block5_conv4",
         weights_file="vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
         weights_url=_KERAS_APPLICATIONS_URL
         + "vgg19/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
         weights_hash="253f8cb515780f3b799900260a226db6"),
    _row("ResNet50", "resnet",
         weights_file="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
         weights_hash="4d473c1dd8becc155b73f8504c6f6626"),
    _row("ResNet101", "resnet",
         weights_file="resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5",
         weights_hash="88cf7a10940856eca736dc7b7e228a21"),
    _row("ResNet152", "resnet",
         weights_file="resnet152_weights_tf_dim_ordering_tf_kernels_notop.h5",
         weights_hash="ee4c566cf9a93f14d82f913c2dc6dd0c"),
    _row("ResNet50V2", "resnet_v2",
         weights_file="resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
         weights_hash="fac2f116257151a9d068a22e544a4917"),
    _row("ResNet101V2", "resnet_v2",
         weights_file="resnet101v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
         weights_hash="c0ed64b8031c3730f411d2eb4eea35b5"),
    _row("ResNet152V2", "resnet_v2",
         weights_file="resnet152v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
         weights_hash="ed17cf2e0169df9d443503ef94b23b33"),
    _row("InceptionV3", "inception_v3", default_name="inception_v3",
         output_layer="mixed10", landmarks=r"^mixed\d+$", last_block_after="mixed8",
         weights_file="inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
         weights_hash="bcbd6486424b2319ff4ef7d526e38f63"),
    _row("InceptionResNetV2", "inception_resnet_v2", default_name="inception_resnet_v2",
         last_conv="conv_7b", output_layer="conv_7b_ac",
         landmarks=r"^(?:mixed_\w+|block(?:35|17|8)_\d+_ac|conv_7b(?:_ac)?)$",
         last_block_after="block8_9_ac",
         weights_file="inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
         weights_hash="d19885ff4a710c122648d3b5c3b684e4"),
    _row("Xception", "xception", last_conv="block14_sepconv2",
         output_layer="block14_sepconv2_act", block_patterns=_VGG_BLOCKS,
         last_block_start="block14_sepconv1",
         weights_file="xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
         weights_hash="b0042744bf5b25fce3cb969f33bebb97"),
    _row("MobileNet", "mobilenet", last_conv="conv_pw_13", output_layer="conv_pw_13_relu",
         landmarks=r"^conv_pw_\d+_relu$", last_block_start="conv_dw_13",
         weights_file="mobilenet_1_0_224_tf_no_top.h5", weights_hash=None),
    _row("MobileNetV2", "mobilenet_v2", last_conv="Conv_1", output_layer="out_relu",
         last_block_start="block_16_expand",
         weights_file="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
         weights_hash=None),
    _row("MobileNetV3Small", "mobilenet_v3", last_block_start="expanded_conv_10_expand",
         weights_file="weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5",
         weights_hash="d3e8ec802a04aa4fc771ee12a9a9b836"),
    _row("MobileNetV3Large", "mobilenet_v3", last_block_start="expanded_conv_14_expand",
         weights_file="weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5",
         weights_hash="07fb09a5933dd0c8eaafa16978110389"),
    _row("DenseNet121", "densenet", last_conv="conv5_block16_2_conv",
         weights_file="densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
         weights_hash="30ee3e1110167f948a6b9946edeeb738"),
    _row("DenseNet169", "densenet", last_conv="conv5_block32_2_conv",
         weights_file="densenet169_weights_tf_dim_ordering_tf_kernels_notop.h5",
         weights_hash="b8c4d4c20dd625c148057b9ff1c1176b"),
    _row("DenseNet201", "densenet", last_conv="conv5_block32_2_conv",
         weights_file="densenet201_weights_tf_dim_ordering_tf_kernels_notop.h5",
         weights_hash="c13680b51ded0fb44dff2d8f86ac8bb1"),
    # NASNet: Keras stores the file under another name than the URL's.
    _row("NASNetMobile", "nasnet", default_name="nasnet_mobile",
         last_conv="separable_conv_2_normal_left5_12", last_block_after="normal_concat_11",
         weights_file="nasnet_mobile_no_top.h5",
         weights_url=_KERAS_APPLICATIONS_URL + "nasnet/NASNet-mobile-no-top.h5",
         weights_hash="1ed92395b5b598bdda52abe5c0dbfd63"),
    _row("NASNetLarge", "nasnet", default_name="nasnet_large", default_size=331,
         last_conv="separable_conv_2_normal_left5_18", last_block_after="normal_concat_17",
         weights_file="nasnet_large_no_top.h5",
         weights_url=_KERAS_APPLICATIONS_URL + "nasnet/NASNet-large-no-top.h5",
         weights_hash="d81d89dc07e6e56530c4e77faddd61b5"),
    _row("EfficientNetB0", "efficientnet", weights_file="efficientnetb0_notop.h5",
         weights_hash="50bc09e76180e00e4465e1a485ddc09d"),
    _row("EfficientNetB1", "efficientnet", default_size=240,
         weights_file="efficientnetb1_notop.h5",
         weights_hash="74c4e6b3e1f6a1eea24c589628592432"),
    _row("EfficientNetB2", "efficientnet", default_size=260,
         weights_file="efficientnetb2_notop.h5",
         weights_hash="111f8e2ac8aa800a7a99e3239f7bfb39"),
    _row("EfficientNetB3", "efficientnet", default_size=300,
         weights_file="efficientnetb3_notop.h5",
         weights_hash="af6d107764bb5b1abb91932881670226"),
    _row("EfficientNetB4", "efficientnet", default_size=380,
         weights_file="efficientnetb4_notop.h5",
         weights_hash="ebc24e6d6c33eaebbd558eafbeedf1ba"),
    _row("EfficientNetB5", "efficientnet", default_size=456,
         weights_file="efficientnetb5_notop.h5",
         weights_hash="38879255a25d3c92d5e44e04ae6cec6f"),
    _row("EfficientNetB6", "efficientnet", default_size=528,
         weights_file="efficientnetb6_notop.h5",
         weights_hash="9ecce42647a20130c1f39a5d4cb75743"),
    _row("EfficientNetB7", "efficientnet", default_size=600,
         weights_file="efficientnetb7_notop.h5",
         weights_hash="cbcfe4450ddf6f3ad90b1b398090fe4a"),
    _row("EfficientNetV2B0", "efficientnet_v2", default_name="efficientnetv2_b0",
         weights_file="efficientnetv2-b0_notop.h5",
         weights_hash="893217f2bb855e2983157299931e43ff"),
    _row("EfficientNetV2B1", "efficientnet_v2", default_name="efficientnetv2_b1",
         default_size=240, weights_file="efficientnetv2-b1_notop.h5",
         weights_hash="0e80663031ca32d657f9caa404b6ec37"),
    _row("EfficientNetV2B2", "efficientnet_v2", default_name="efficientnetv2_b2",
         default_size=260, weights_file="efficientnetv2-b2_notop.h5",
         weights_hash="1dfe2e7a5d45b6632553a8961ea609eb"),
    _row("EfficientNetV2B3", "efficientnet_v2", default_name="efficientnetv2_b3",
         default_size=300, weights_file="efficientnetv2-b3_notop.h5",
         weights_hash="f6abf7b5849ac99a89b50dd3fd532856"),
    _row("EfficientNetV2S", "efficientnet_v2", default_name="efficientnetv2_s",
         default_size=384, weights_file="efficientnetv2-s_notop.h5",
         weights_hash="af0682fb74e8c54910f2d4393339c070"),
    _row("EfficientNetV2M", "efficientnet_v2", default_name="efficientnetv2_m",
         default_size=480, last_block_start="block7a_expand_conv",
         weights_file="efficientnetv2-m_notop.h5",
         weights_hash="1b8dc055df72dde80d614482840fe342"),
    _row("EfficientNetV2L", "efficientnet_v2", default_name="efficientnetv2_l",
         default_size=480, last_block_start="block7a_expand_conv",
         weights_file="efficientnetv2-l_notop.h5",
         weights_hash="b0b66b5c863aef5b46e8608fe1711615"),
    _convnext("Tiny", "d547c096cabd03329d7be5562c5e14798aa39ed24b474157cef5e85ab9e49ef1"),
    _convnext("Small", "6fc8009faa2f00c1c1dfce59feea9b0745eb260a7dd11bee65c8e20843da6eab"),
    _convnext("Base", "40a20c5548a5e9202f69735ecc06c990e6b7c9d2de39f0361e27baeb24cb7c45"),
    _convnext("Large", "96f02b6f0753d4f543261bc9d09bed650f24dd6bc02ddde3066135b63d23a1cd"),
    _convnext("XLarge", "de3f8a54174130e0cecdc71583354753d557fcf1f4487331558e2a16ba0cfe05"),
)


def _normalize(name: str) -> str:
    return re.sub(r"[\s_\-.]", "", name).lower()


_REGISTRY: dict[str, Architecture] = {_normalize(row.name): row for row in _ROWS}


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
        return [row.name for row in _ROWS]
    families = list(_FAMILIES)
    if family not in families:
        hint = args.did_you_mean(family, families)
        raise ValueError(
            f"Unknown family.{hint} Known families: {families}. "
            f"{args.received('family', family)}"
        )
    return [row.name for row in _ROWS if row.family == family]


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
            "`architecture` must be a name such as 'VGG16' (see "
            f"available_architectures()). {args.received('architecture', name)}"
        )
    key = _normalize(name)
    if key in _REGISTRY:
        return _REGISTRY[key]
    close = args.closest(key, list(_REGISTRY), n=3, cutoff=0.5)
    hint = [_REGISTRY[k].name for k in close]
    message = f"Unknown architecture {name!r}."
    if hint:
        message += f" Did you mean {', '.join(repr(h) for h in hint)}?"
    message += " See available_architectures() for the full list."
    raise ValueError(message)
