"""Helpers for the pretrained tests."""

import numpy as np


def weights_by_layer(model):
    """Copies every layer's weights: {layer name: [arrays]} (descends into models)."""
    from keras_smalldata.pretrained.freezing import weight_layers

    return {
        layer.name: [np.array(w) for w in layer.get_weights()] for layer in weight_layers(model)
    }


def changed(before, after, name):
    """True when any weight array of layer ``name`` differs."""
    return any(not np.array_equal(a, b) for a, b in zip(before[name], after[name]))
