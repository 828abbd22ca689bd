"""Training: the baseline convnet, smoothing and gradual-unfreezing callbacks, the
learning-rate range test and one-cycle schedule, history files and plots."""

from keras_smalldata.training.collapse import CollapseCheck, TrainingCollapseWarning
from keras_smalldata.training.curve_smoothing import CurveSmoothing, check_callbacks
from keras_smalldata.training.gradual_unfreezing import GradualUnfreezing
from keras_smalldata.training.history_io import load_history, save_history
from keras_smalldata.training.history_plot import plot_history
from keras_smalldata.training.lr_range_test import LearningRateRange, lr_range_test
from keras_smalldata.training.one_cycle import OneCycle
from keras_smalldata.training.small_convnet import small_convnet
from keras_smalldata.training.smoothing import smooth_curve

__all__ = [
    "CollapseCheck",
    "TrainingCollapseWarning",
    "CurveSmoothing",
    "GradualUnfreezing",
    "LearningRateRange",
    "OneCycle",
    "check_callbacks",
    "load_history",
    "lr_range_test",
    "plot_history",
    "save_history",
    "small_convnet",
    "smooth_curve",
]
