"""Training: the baseline convnet, curve smoothing, a smoothing callback, history files and plots."""

from keras_smalldata.training.curve_smoothing import CurveSmoothing, check_callbacks
from keras_smalldata.training.history_io import load_history, save_history
from keras_smalldata.training.history_plot import plot_history
from keras_smalldata.training.small_convnet import small_convnet
from keras_smalldata.training.smoothing import smooth_curve

__all__ = [
    "CurveSmoothing",
    "check_callbacks",
    "load_history",
    "plot_history",
    "save_history",
    "small_convnet",
    "smooth_curve",
]
