"""keras-smalldata: Keras 3 components for deep learning on small image datasets.

The public API is re-exported here. Sub-packages are imported on first use, so
``import keras_smalldata`` stays fast and does not start TensorFlow.
"""

import importlib as _importlib

__version__ = "0.2.0"

# Public name -> the sub-package that defines it.
_EXPORTS = {
    # data
    "demo_dataset": "keras_smalldata.data",
    "make_subsets": "keras_smalldata.data",
    "verify_images": "keras_smalldata.data",
    "SubsetSummary": "keras_smalldata.data",
    "VerificationReport": "keras_smalldata.data",
    # augment
    "ImageDataGeneratorAugmentation": "keras_smalldata.augment",
    "RandomAffine": "keras_smalldata.augment",
    "RandomBrightnessMultiplier": "keras_smalldata.augment",
    "RandomChannelShift": "keras_smalldata.augment",
    "affine_matrix": "keras_smalldata.augment",
    "augmentation_pipeline": "keras_smalldata.augment",
    "augmentation_preset": "keras_smalldata.augment",
    "from_image_data_generator": "keras_smalldata.augment",
    "show_augmentations": "keras_smalldata.augment",
    "mixing_augmentation": "keras_smalldata.augment",
    "predict_with_tta": "keras_smalldata.augment",
    # features
    "CacheNotUsedWarning": "keras_smalldata.features",
    "CorruptedCacheWarning": "keras_smalldata.features",
    "FeatureSet": "keras_smalldata.features",
    "StaleCacheWarning": "keras_smalldata.features",
    "extract_features": "keras_smalldata.features",
    # pretrained
    "DiscriminativeOptimizer": "keras_smalldata.pretrained",
    "ImageNetPreprocessing": "keras_smalldata.pretrained",
    "PretrainedBase": "keras_smalldata.pretrained",
    "RandomWeightsFallbackWarning": "keras_smalldata.pretrained",
    "StaleCompileWarning": "keras_smalldata.pretrained",
    "pretrained_base_or_random": "keras_smalldata.pretrained",
    "add_classifier_head": "keras_smalldata.pretrained",
    "available_architectures": "keras_smalldata.pretrained",
    "block_groups": "keras_smalldata.pretrained",
    "classifier_model": "keras_smalldata.pretrained",
    "get_architecture": "keras_smalldata.pretrained",
    "keras_cache_dir": "keras_smalldata.pretrained",
    "recompile": "keras_smalldata.pretrained",
    "trainable_summary": "keras_smalldata.pretrained",
    # training
    "CollapseCheck": "keras_smalldata.training",
    "CurveSmoothing": "keras_smalldata.training",
    "LearningRateRange": "keras_smalldata.training",
    "OneCycle": "keras_smalldata.training",
    "TrainingCollapseWarning": "keras_smalldata.training",
    "lr_range_test": "keras_smalldata.training",
    "GradualUnfreezing": "keras_smalldata.training",
    "small_convnet": "keras_smalldata.training",
    "check_callbacks": "keras_smalldata.training",
    "load_history": "keras_smalldata.training",
    "plot_history": "keras_smalldata.training",
    "save_history": "keras_smalldata.training",
    "smooth_curve": "keras_smalldata.training",
    # viz
    "ClassActivationMaps": "keras_smalldata.viz",
    "FilterPatterns": "keras_smalldata.viz",
    "Interpretation": "keras_smalldata.viz",
    "Misclassified": "keras_smalldata.viz",
    "interpret": "keras_smalldata.viz",
    "cam_faithfulness": "keras_smalldata.viz",
    "class_activation_maps": "keras_smalldata.viz",
    "colorize_heatmap": "keras_smalldata.viz",
    "deprocess_image": "keras_smalldata.viz",
    "filter_pattern": "keras_smalldata.viz",
    "filter_patterns": "keras_smalldata.viz",
    "find_last_conv_layer": "keras_smalldata.viz",
    "find_misclassified": "keras_smalldata.viz",
    "get_activations": "keras_smalldata.viz",
    "layer_paths": "keras_smalldata.viz",
    "normalize_heatmaps": "keras_smalldata.viz",
    "overlay_heatmap": "keras_smalldata.viz",
    "plot_activations": "keras_smalldata.viz",
    "plot_filter_patterns": "keras_smalldata.viz",
    "plot_class_activation_maps": "keras_smalldata.viz",
    "plot_misclassified": "keras_smalldata.viz",
    # start-up
    "import_keras_quietly": "keras_smalldata._startup",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'keras_smalldata' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


# The library's layers saved in a .keras file load after a plain
# ``import keras_smalldata``: registered with Keras once Keras is loaded.
_importlib.import_module("keras_smalldata._startup").register_serializables_when_keras_is_loaded()
