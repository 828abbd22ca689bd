"""Training: the baseline convnet, smoothing and gradual-unfreezing callbacks, history files and plots."""

from keras_smalldata.training.curve_smoothing import CurveSmoothing, check_callbacks
from keras_smalldata.training.gradual_unfreezing import GradualUnfreezing
from keras_smalldata.training.history_io import load_history, save_history
from keras_smalldata.training.history_plot import plot_history
from keras_smalldata.training.small_convnet import small_convnet
from keras_smalldata.training.smoothing import smooth_curve

__all__ = [
    "CurveSmoothing",
    "GradualUnfreezing",
    "check_callbacks",
    "load_history",
    "plot_history",
    "save_history",
    "small_convnet",
    "smooth_curve",
]
