"""GradualUnfreezing: which weights move at which epoch, beside CurveSmoothing and EarlyStopping."""

import warnings

import keras
import numpy as np
import pytest

from keras_smalldata.pretrained import (
    PretrainedBase,
    StaleCompileWarning,
    add_classifier_head,
)
from keras_smalldata.pretrained.learning_rates import (
    DiscriminativeOptimizer,
    block_groups,
)
from keras_smalldata.training import CurveSmoothing, check_callbacks
from keras_smalldata.training.gradual_unfreezing import GradualUnfreezing

RNG = np.random.default_rng(0)
PICTURES = RNG.uniform(0, 255, (8, 32, 32, 3)).astype("float32")
LABELS = (np.arange(8) % 2).astype("float32")
# Eager TensorFlow skips tracing a graph for a few steps; eager JAX is slower than jit.
EAGER = keras.backend.backend() == "tensorflow"


def small_base(train_batchnorm=False, output_layer="block_4"):
    """MobileNetV2 (alpha 0.35) up to block_4: BatchNormalization in every block."""
    return PretrainedBase("mobilenet_v2", input_shape=(32, 32, 3), weights=None,
                          application_kwargs={"alpha": 0.35}, output_layer=output_layer,
                          train_batchnorm=train_batchnorm)


@pytest.fixture(scope="module")
def base():
    return small_base()


def compiled(base, optimizer=None, run_eagerly=False):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, add_classifier_head(base(inputs), hidden_units=4, reduce="avg",
                                                    dropout=0.0))
    with warnings.catch_warnings():  # the previous test's model is done with
        warnings.simplefilter("ignore", StaleCompileWarning)
        base.freeze_until("block_2")  # blocks 2, 3 and 4 may train
    if optimizer is None:
        optimizer = DiscriminativeOptimizer(keras.optimizers.Adam(1e-3), model)
    model.compile(optimizer, "binary_crossentropy", run_eagerly=run_eagerly)
    return model


class WeightRecorder(keras.callbacks.Callback):
    """The names of the base's layers whose weights (any, BN statistics too) changed each epoch."""

    def __init__(self, base):
        super().__init__()
        self.base = base
        self.changed = {}

    def _weights(self):
        return {layer.name: [keras.ops.convert_to_numpy(w).copy() for w in layer.weights]
                for layer in self.base.layers if layer.weights}

    def on_epoch_begin(self, epoch, logs=None):
        self._before = self._weights()

    def on_epoch_end(self, epoch, logs=None):
        after = self._weights()
        self.changed[epoch] = {
            name for name, weights in after.items()
            if any(not np.array_equal(a, b) for a, b in zip(weights, self._before[name]))
        }


def trainable_layers(base, *blocks):
    groups = dict(block_groups(base))
    return {layer.name for block in blocks for layer in groups[block] if layer.trainable_weights}


def test_blocks_train_one_after_the_other_beside_curve_smoothing_and_early_stopping(base):
    model = compiled(base)
    unfreezing = GradualUnfreezing(base, every=1)
    assert unfreezing.unfreezing_order() == ["block_4", "block_3", "block_2"]
    recorder = WeightRecorder(base)
    callbacks = check_callbacks([
        CurveSmoothing(metrics=["val_loss"]),
        keras.callbacks.EarlyStopping(monitor="val_loss_smoothed", mode="min", patience=10),
        unfreezing,
        recorder,
    ])
    history = model.fit(PICTURES, LABELS, validation_data=(PICTURES, LABELS), batch_size=4,
                        epochs=4, callbacks=callbacks, verbose=0)
    assert unfreezing.training_blocks == {
        0: [], 1: ["block_4"], 2: ["block_4", "block_3"], 3: ["block_4", "block_3", "block_2"],
    }
    # Exactly the convolutions of the blocks due; never the BatchNormalization
    # layers (train_batchnorm=False), never the blocks freeze_until froze.
    assert recorder.changed == {
        0: set(),
        1: trainable_layers(base, "block_4"),
        2: trainable_layers(base, "block_4", "block_3"),
        3: trainable_layers(base, "block_4", "block_3", "block_2"),
    }
    assert trainable_layers(base, "block_2") == {
        "block_2_expand", "block_2_depthwise", "block_2_project"}
    assert len(history.history["val_loss_smoothed"]) == 4


def test_every_initial_blocks_early_stop_and_every_block_trains_after_fit(base, capsys):
    model = compiled(base, run_eagerly=EAGER)
    unfreezing = GradualUnfreezing(base, every=2, initial_blocks=1, verbose=1)
    recorder = WeightRecorder(base)
    # No epoch improves by 1e9: training stops at the end of epoch 3 (index 2).
    stop = keras.callbacks.EarlyStopping(monitor="loss", min_delta=1e9, patience=2)
    model.fit(PICTURES, LABELS, batch_size=8, epochs=6, callbacks=[unfreezing, stop, recorder],
              verbose=0)
    assert unfreezing.training_blocks == {0: ["block_4"], 1: ["block_4"],
                                          2: ["block_4", "block_3"]}
    assert [recorder.changed[e] for e in range(3)] == [
        trainable_layers(base, "block_4"), trainable_layers(base, "block_4"),
        trainable_layers(base, "block_4", "block_3")]
    assert capsys.readouterr().out.splitlines() == [
        "Epoch 1: GradualUnfreezing: block_4 trains from now on (1 of 3 blocks).",
        "Epoch 3: GradualUnfreezing: block_3 trains from now on (2 of 3 blocks).",
    ]
    # After fit nothing is held still: block_2 trains in the next fit.
    model.fit(PICTURES, LABELS, batch_size=8, epochs=1, callbacks=[recorder], verbose=0)
    assert recorder.changed[0] == trainable_layers(base, "block_4", "block_3", "block_2")


def test_refusals(base):
    with pytest.raises(TypeError, match="must be the PretrainedBase"):
        GradualUnfreezing("base")
    with pytest.raises(ValueError, match="`every` must be a positive int"):
        GradualUnfreezing(base, every=0)
    with pytest.raises(TypeError, match="`every` must be a positive int"):
        GradualUnfreezing(base, every=1.5)
    with pytest.raises(ValueError, match="`initial_blocks`"):
        GradualUnfreezing(base, initial_blocks=-1)

    plain = compiled(base, optimizer=keras.optimizers.Adam(1e-3), run_eagerly=EAGER)
    with pytest.raises(ValueError, match="compile the model with a DiscriminativeOptimizer"):
        plain.fit(PICTURES, LABELS, epochs=1, callbacks=[GradualUnfreezing(base)], verbose=0)
    model = compiled(base, run_eagerly=EAGER)
    other = small_base(output_layer="block_1")
    with pytest.raises(ValueError, match="is not part of the model"):
        model.fit(PICTURES, LABELS, epochs=1, callbacks=[GradualUnfreezing(other)], verbose=0)
    with warnings.catch_warnings():  # the models above share the base: stale, rightly
        warnings.simplefilter("ignore", StaleCompileWarning)
        base.freeze(recompile=model)
    with pytest.raises(ValueError, match="no block of .* is trainable"):
        model.fit(PICTURES, LABELS, epochs=1, callbacks=[GradualUnfreezing(base)], verbose=0)


def test_batchnorm_that_trains_in_a_waiting_block_is_refused():
    base = small_base(train_batchnorm=True, output_layer="block_2")
    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, add_classifier_head(base(inputs), hidden_units=4, reduce="avg"))
    base.freeze_until("block_1")
    model.compile(DiscriminativeOptimizer("adam", model), "binary_crossentropy",
                  run_eagerly=EAGER)
    with pytest.raises(ValueError, match="BatchNormalization layers of .* are trainable "
                                         r"\(train_batchnorm=True\) in blocks that wait"):
        model.fit(PICTURES, LABELS, epochs=1, callbacks=[GradualUnfreezing(base)], verbose=0)
    # Blocks that never wait may keep trainable BatchNormalization layers.
    model.fit(PICTURES, LABELS, epochs=1, verbose=0,
              callbacks=[GradualUnfreezing(base, initial_blocks=2)])


@pytest.fixture
def mixed_float16():
    keras.config.set_dtype_policy("mixed_float16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy("float32")


def test_under_mixed_float16_the_optimizer_inside_the_loss_scale_optimizer_is_used(mixed_float16):
    """Issue 23: Keras wraps the optimizer in a LossScaleOptimizer; the callback asked for
    the DiscriminativeOptimizer the user had given."""
    base = small_base()
    model = compiled(base, run_eagerly=EAGER)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(model.optimizer.inner_optimizer, DiscriminativeOptimizer)
    unfreezing = GradualUnfreezing(base, every=1)
    recorder = WeightRecorder(base)
    model.fit(PICTURES, LABELS, batch_size=4, epochs=3, callbacks=[unfreezing, recorder],
              verbose=0)
    assert unfreezing.training_blocks == {0: [], 1: ["block_4"], 2: ["block_4", "block_3"]}
    assert recorder.changed == {
        0: set(),
        1: trainable_layers(base, "block_4"),
        2: trainable_layers(base, "block_4", "block_3"),
    }


def test_under_mixed_float16_a_plain_optimizer_is_named_with_its_wrapper(mixed_float16):
    base = small_base(output_layer="block_2")
    plain = compiled(base, optimizer=keras.optimizers.Adam(1e-3), run_eagerly=EAGER)
    with pytest.raises(ValueError, match="inside the LossScaleOptimizer") as info:
        plain.fit(PICTURES, LABELS, epochs=1, callbacks=[GradualUnfreezing(base)], verbose=0)
    assert "(LossScaleOptimizer wrapping Adam)" in str(info.value)
