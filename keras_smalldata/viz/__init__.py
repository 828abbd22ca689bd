"""Visualisation: activations, filter patterns, class activation maps, overlays, mistakes.

Everything works on Keras 3 models of any kind (Functional, Sequential,
subclassed), including layers inside a nested model such as a
`keras.applications` base, named by their path (``"vgg16/block3_conv1"``),
on the TensorFlow, JAX and PyTorch backends.
"""

from keras_smalldata.viz._layers import layer_paths
from keras_smalldata.viz.activations import get_activations, plot_activations
from keras_smalldata.viz.cam import (
    ClassActivationMaps,
    class_activation_maps,
    find_last_conv_layer,
    normalize_heatmaps,
    plot_class_activation_maps,
)
from keras_smalldata.viz.faithfulness import cam_faithfulness
from keras_smalldata.viz.filter_patterns import (
    FilterPatterns,
    deprocess_image,
    filter_pattern,
    filter_patterns,
    plot_filter_patterns,
)
from keras_smalldata.viz.interpretation import Interpretation, interpret
from keras_smalldata.viz.misclassified import (
    Misclassified,
    find_misclassified,
    plot_misclassified,
)
from keras_smalldata.viz.overlay import colorize_heatmap, overlay_heatmap

__all__ = [
    "ClassActivationMaps",
    "FilterPatterns",
    "Interpretation",
    "Misclassified",
    "cam_faithfulness",
    "class_activation_maps",
    "colorize_heatmap",
    "deprocess_image",
    "filter_pattern",
    "filter_patterns",
    "find_last_conv_layer",
    "find_misclassified",
    "get_activations",
    "interpret",
    "layer_paths",
    "normalize_heatmaps",
    "overlay_heatmap",
    "plot_activations",
    "plot_class_activation_maps",
    "plot_filter_patterns",
    "plot_misclassified",
]
