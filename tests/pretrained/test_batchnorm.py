"""BatchNormalization stays in inference mode while fine-tuning (unless asked otherwise)."""

import keras
import numpy as np
import pytest

from keras_smalldata.pretrained import PretrainedBase, add_classifier_head
from tests.pretrained._helpers import changed, weights_by_layer

SHAPE = (32, 32, 3)
KWARGS = {"alpha": 0.25}  # a small MobileNet (v1): 27 BatchNormalization layers


def _bn_layers(base):
    return [layer for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization)]


def _mobilenet(weights, **kwargs):
    return PretrainedBase("mobilenet", input_shape=SHAPE, weights=weights,
                          application_kwargs=KWARGS, **kwargs)


@pytest.fixture(scope="module")
def saved_weights(tmp_path_factory):
    """A MobileNet weights file, standing in for pretrained weights.

    Random weights with BN moving statistics left at (0, 1) make activations
    vanish through the network, so first calibrate every BN layer's moving
    mean/variance on some pictures (momentum 0: moving stats = batch stats).
    """
    base = _mobilenet(None)
    x = np.random.default_rng(2).uniform(0, 255, size=(16, *SHAPE)).astype("float32")
    for layer in _bn_layers(base):
        layer.momentum = 0.0
    base(x, training=True)
    for layer in _bn_layers(base):
        layer.momentum = 0.99
    path = tmp_path_factory.mktemp("weights") / "mobilenet.weights.h5"
    base.save_weights(path)
    return path


@pytest.fixture(scope="module")
def pretrained(saved_weights):
    return _mobilenet(saved_weights)


@pytest.fixture(scope="module")
def pretrained_train_bn(saved_weights):
    return _mobilenet(saved_weights, train_batchnorm=True)


def test_default_depends_on_weights(pretrained):
    assert pretrained.train_batchnorm is False
    assert len(_bn_layers(pretrained)) == 27
    assert not any(layer.trainable for layer in _bn_layers(pretrained))
    pretrained.unfreeze()  # unfreezing does not wake BN up
    assert not any(layer.trainable for layer in _bn_layers(pretrained))
    assert pretrained.trainable_summary().frozen_batchnorm_layers == 27
    scratch = _mobilenet(None)
    assert scratch.train_batchnorm is True  # from scratch, BN must learn
    assert all(layer.trainable for layer in _bn_layers(scratch))
    assert scratch.trainable_summary().frozen_batchnorm_layers == 0


def test_frozen_bn_runs_in_inference_mode(pretrained, pretrained_train_bn):
    pretrained.unfreeze()
    pretrained_train_bn.unfreeze()
    x = np.random.default_rng(0).uniform(0, 255, size=(4, *SHAPE)).astype("float32")
    infer_mode = keras.ops.convert_to_numpy(pretrained(x, training=False))
    train_mode = keras.ops.convert_to_numpy(pretrained(x, training=True))
    np.testing.assert_allclose(train_mode, infer_mode, rtol=1e-5, atol=1e-5)
    # With trainable BN, training=True normalises with the batch's statistics.
    batch_stats = keras.ops.convert_to_numpy(pretrained_train_bn(x, training=True))
    assert not np.allclose(batch_stats, infer_mode, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("train_batchnorm", [False, True])
def test_fine_tuning_and_batchnorm_statistics(pretrained, pretrained_train_bn, train_batchnorm):
    base = pretrained_train_bn if train_batchnorm else pretrained
    inputs = keras.Input(SHAPE)
    outputs = add_classifier_head(base(inputs), reduce="avg", hidden_units=None, dropout=0.0)
    model = keras.Model(inputs, outputs)
    base.unfreeze_last_block()  # MobileNet: freeze_until("conv_dw_13")
    model.compile(keras.optimizers.SGD(0.1), "binary_crossentropy", run_eagerly=True)
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 255, size=(8, *SHAPE)).astype("float32")
    y = np.array([0, 1] * 4, dtype="float32")
    before = weights_by_layer(model)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    after = weights_by_layer(model)
    # The last block's convolutions train in both cases...
    assert changed(before, after, "conv_dw_13")
    assert changed(before, after, "conv_pw_13")
    # ... the frozen part never moves, BN included ...
    assert not changed(before, after, "conv_pw_12")
    assert not changed(before, after, "conv_pw_12_bn")
    # ... and the last block's BN (gamma, beta, moving mean/variance) only
    # moves when asked to.
    for name in ("conv_dw_13_bn", "conv_pw_13_bn"):
        assert changed(before, after, name) is train_batchnorm
