"""Augmentation layers, pipeline builders, MixUp and CutMix, test-time augmentation."""

from keras_smalldata.augment.affine import RandomAffine, affine_matrix
from keras_smalldata.augment.color import RandomBrightnessMultiplier, RandomChannelShift
from keras_smalldata.augment.image_data_generator import (
    ImageDataGeneratorAugmentation,
    from_image_data_generator,
)
from keras_smalldata.augment.mixing import mixing_augmentation
from keras_smalldata.augment.pipelines import (
    PRESETS,
    augmentation_pipeline,
    augmentation_preset,
)
from keras_smalldata.augment.show import show_augmentations
from keras_smalldata.augment.test_time import predict_with_tta

__all__ = [
    "PRESETS",
    "ImageDataGeneratorAugmentation",
    "RandomAffine",
    "RandomBrightnessMultiplier",
    "RandomChannelShift",
    "affine_matrix",
    "augmentation_pipeline",
    "augmentation_preset",
    "from_image_data_generator",
    "mixing_augmentation",
    "predict_with_tta",
    "show_augmentations",
]
