"""Freezing VGG16 by name, block, index; exact counts; refusals; recompiling."""

import warnings

import keras
import numpy as np
import pytest

from keras_smalldata.pretrained import (
    PretrainedBase,
    StaleCompileWarning,
    add_classifier_head,
    recompile,
    trainable_summary,
)
from tests.pretrained._helpers import changed, weights_by_layer

BLOCK5_PARAMS = 3 * (3 * 3 * 512 * 512 + 512)  # 7,079,424
# Logits: a saturated sigmoid would stop every gradient (Keras clips probabilities)
# and a base whose weights did not move has not trained.
LOGITS_LOSS = keras.losses.BinaryCrossentropy(from_logits=True)
SEEDS_HEAD_PARAMS = (4 * 4 * 512 * 256 + 256) + (256 + 1)  # 2,097,665


@pytest.fixture(scope="module")
def seeds_model():
    """The seeds' model: VGG16 at 150x150 (4x4x512 features) + their head. Built, never run."""
    base = PretrainedBase("vgg16", input_shape=(150, 150, 3), weights=None)
    inputs = keras.Input((150, 150, 3))
    outputs = add_classifier_head(base(inputs))
    return base, keras.Model(inputs, outputs)


@pytest.fixture(autouse=True)
def _reset(vgg16):
    # The models a test compiled around the shared base end with the test, so
    # none of them can go stale.
    def unfreeze():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", StaleCompileWarning)
            vgg16.unfreeze()

    unfreeze()
    yield
    unfreeze()


def test_seeds_counts(seeds_model):
    base, model = seeds_model
    assert base.output.shape == (None, 4, 4, 512)
    assert base.count_params() == 14_714_688
    base.unfreeze()
    assert len(model.trainable_weights) == 30  # the seeds' "before freezing" printout
    base.freeze()
    assert len(model.trainable_weights) == 4  # ... and "after"
    assert trainable_summary(model).trainable_params == SEEDS_HEAD_PARAMS == 2_097_665
    base.freeze_until("block5_conv1")
    summary = trainable_summary(model)
    assert summary.trainable_params == BLOCK5_PARAMS + SEEDS_HEAD_PARAMS == 9_177_089
    assert summary.trainable_weights == 6 + 4
    assert summary.non_trainable_params == 14_714_688 - BLOCK5_PARAMS
    base.unfreeze()


@pytest.mark.parametrize(
    "method, target",
    [
        ("freeze_until", "block5_conv1"),
        ("freeze_until", "block5"),
        ("freeze_until", 16),
        ("freeze_until", -4),
        ("freeze_through", "block4_pool"),
        ("freeze_through", "block4"),
        ("freeze_through", 15),
        ("unfreeze_last_block", None),
    ],
)
def test_every_way_to_train_block5_only(vgg16, method, target):
    args = () if target is None else (target,)
    assert getattr(vgg16, method)(*args) is vgg16
    trainable = [layer.name for layer in vgg16.layers if layer.trainable_weights]
    assert trainable == ["block5_conv1", "block5_conv2", "block5_conv3"]
    summary = vgg16.trainable_summary()
    assert (summary.trainable_params, summary.trainable_layers, summary.frozen_layers) == (
        BLOCK5_PARAMS, 3, 10,
    )
    assert summary.first_trainable_layer == "block5_conv1"


def test_freeze_and_unfreeze_whole_base(vgg16):
    vgg16.freeze()
    assert vgg16.trainable is False and vgg16.trainable_weights == []
    assert vgg16.trainable_summary().non_trainable_params == 14_714_688
    vgg16.unfreeze()
    assert len(vgg16.trainable_weights) == 26
    assert all(layer.trainable for layer in vgg16.layers)


def test_freeze_until_a_layer_object_and_by_other_blocks(vgg16):
    vgg16.freeze_until(vgg16.get_layer("block3_conv1"))
    assert vgg16.trainable_summary().first_trainable_layer == "block3_conv1"
    vgg16.freeze_until("block2")
    assert vgg16.trainable_summary().trainable_layers == 11
    vgg16.freeze_until(0)
    assert vgg16.trainable_summary().frozen_layers == 0


def test_summary_text(vgg16):
    text = str(vgg16.freeze_until("block5_conv1").trainable_summary())
    assert "3 trainable, 10 frozen" in text
    assert "7,079,424 trainable, 7,635,264 non-trainable" in text
    assert "first trainable layer: block5_conv1" in text


def test_unknown_name_gets_closest_names(vgg16):
    with pytest.raises(ValueError, match=r"no layer or block named 'block5_conv'.*'block5_conv1'"):
        vgg16.freeze_until("block5_conv")
    with pytest.raises(ValueError, match=r"Blocks: \['block1', .*'block5'\]"):
        vgg16.freeze_until("blok5")


@pytest.mark.parametrize(
    "bad, error, message",
    [
        (20, ValueError, r"index out of range; 'vgg16' has 20 layers \(indices -20 to 19\)"),
        (-21, ValueError, "index out of range"),
        (True, TypeError, "pass a layer name, block name or index"),
        (1.5, TypeError, "not float"),
        (keras.layers.Dense(2, name="alien"), ValueError, "'alien' is not a layer of 'vgg16'"),
    ],
)
def test_bad_references(vgg16, bad, error, message):
    with pytest.raises(error, match=message):
        vgg16.freeze_until(bad)


@pytest.fixture(scope="module")
def small_mobilenet_v3():
    # MobileNetV3 has auto-numbered layers (re_lu_N, activation_N, multiply_N...).
    return PretrainedBase(
        "MobileNetV3Small", input_shape=(32, 32, 3), weights=None,
        application_kwargs={"alpha": 0.75, "minimalistic": True},
    )


def test_auto_numbered_names_are_refused_with_alternatives(small_mobilenet_v3):
    base = small_mobilenet_v3
    index, layer = next(
        (i, layer) for i, layer in enumerate(base.layers)
        if layer.name.startswith("re_lu_") and i > 60
    )
    with pytest.raises(ValueError) as info:
        base.freeze_until(layer.name)
    message = str(info.value)
    assert f"'{layer.name}' is an automatic layer name" in message
    assert f"freeze_until({index})" in message
    before = next(
        base.layers[i].name for i in range(index - 1, 0, -1)
        if not base.layers[i].name.startswith(("re_lu", "activation", "multiply", "add"))
    )
    assert f"nearest stable layer before it: '{before}'" in message
    # The index it suggests works and means the same layer.
    base.freeze_until(index)
    first_weighted = next(lyr.name for lyr in base.layers[index:] if lyr.weights)
    assert base.trainable_summary().first_trainable_layer == first_weighted
    assert not any(lyr.trainable_weights for lyr in base.layers[:index])
    base.unfreeze()


def test_auto_name_check_is_per_class():
    from keras_smalldata.pretrained import is_auto_named

    assert is_auto_named(keras.layers.Conv2D(1, 1, name="conv2d_94"))
    assert is_auto_named(keras.layers.BatchNormalization(name="batch_normalization"))
    assert not is_auto_named(keras.layers.Conv2D(1, 1, name="block5_conv1"))
    assert not is_auto_named(keras.layers.Activation("relu", name="relu"))


# ----------------------------------------------------------------- recompiling


def _compiled_model(base, logits=False):
    inputs = keras.Input((32, 32, 3))
    head = add_classifier_head(base(inputs), reduce="flatten", hidden_units=8, logits=logits)
    model = keras.Model(inputs, head)
    model.compile(
        keras.optimizers.RMSprop(1e-3), LOGITS_LOSS if logits else "binary_crossentropy",
        metrics=["accuracy"],
        run_eagerly=True,  # two small steps: faster than tracing a graph
    )
    return model


def test_recompile_keeps_loss_and_metrics_and_uses_the_new_optimizer(vgg16):
    model = _compiled_model(vgg16)
    vgg16.freeze()
    finetune = keras.optimizers.RMSprop(1e-5)
    vgg16.freeze_until("block5_conv1", recompile=model, optimizer=finetune)
    assert model.optimizer is finetune
    assert model.loss == "binary_crossentropy"
    assert model.get_compile_config()["metrics"] == ["accuracy"]
    # Without optimizer=: a fresh optimizer with the same settings.
    vgg16.freeze(recompile=model)
    assert model.optimizer is not finetune
    assert isinstance(model.optimizer, keras.optimizers.RMSprop)
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-5)


def test_recompile_checks_its_arguments(vgg16):
    other = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    other.compile("sgd", "mse")
    with pytest.raises(ValueError, match="does not contain this base 'vgg16'"):
        vgg16.freeze(recompile=other)
    with pytest.raises(TypeError, match="must be the keras.Model that contains this base"):
        vgg16.freeze(recompile="model")
    with pytest.raises(TypeError, match="`model` must be a keras.Model"):
        recompile("model")
    with pytest.raises(ValueError, match="optimizer= is only used with recompile=model"):
        vgg16.freeze(optimizer="sgd")
    inputs = keras.Input((32, 32, 3))
    uncompiled = keras.Model(inputs, vgg16(inputs))
    with pytest.raises(ValueError, match="not compiled yet"):
        recompile(uncompiled)
    vgg16.freeze_until("block5")
    with pytest.raises(ValueError, match="'functional.*' is not compiled yet"):
        vgg16.freeze(recompile=uncompiled)
    # A refused call changes nothing.
    assert vgg16.trainable_summary().trainable_params == BLOCK5_PARAMS


def test_recompile_accepts_every_model_that_shares_the_base(vgg16):
    first, second = _compiled_model(vgg16), _compiled_model(vgg16)
    optimizers = first.optimizer, second.optimizer
    vgg16.freeze(recompile=[first, second])
    assert first.optimizer is not optimizers[0] and second.optimizer is not optimizers[1]
    other = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    other.compile("sgd", "mse")
    with pytest.raises(ValueError, match="does not contain this base"):
        vgg16.unfreeze(recompile=(first, other))
    assert vgg16.trainable is False  # refused before any change


# ------------------------------- a freezing change after training: "frozen" means frozen


def _stale_warnings(change):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        change()
    return [w for w in caught if issubclass(w.category, StaleCompileWarning)]


def _small_trained(pictures, run_eagerly, training_false=False, output_layer="block2"):
    """Blocks 1-2 of VGG16 (or more) in a compiled model that has trained once."""
    base = PretrainedBase("vgg16", input_shape=(32, 32, 3), weights=None, output_layer=output_layer)
    inputs = keras.Input((32, 32, 3))
    # training=False: Keras' transfer-learning idiom; it does not stop training.
    features = base(inputs, training=False) if training_false else base(inputs)
    model = keras.Model(inputs, add_classifier_head(features, hidden_units=None, dropout=0.0, logits=True))
    model.compile(keras.optimizers.SGD(1e-6), LOGITS_LOSS, run_eagerly=run_eagerly)
    _fit_once(model, pictures)
    return base, model


def test_freeze_after_fit_warns_at_once_and_the_advice_keeps_weights_frozen(pictures):
    """Issue 14: after a fit, freeze() without recompiling left the weights training.

    Keras (3.15) compiled the old set into the model and said nothing. The
    change now warns when it is made; compiling again, as the warning says,
    makes the next fit leave every frozen weight as it was.
    """
    base, model = _small_trained(pictures, run_eagerly=False, training_false=True)
    caught = _stale_warnings(base.freeze)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert (
        f"Model {model.name!r} trained before this change to the trainable weights of "
        "'vgg16' and was not compiled since"
    ) in message
    assert "recompile=model" in message and "model.compile(...)" in message
    assert caught[0].filename == __file__  # it points at the freezing call
    model.compile(keras.optimizers.SGD(1e-6), LOGITS_LOSS)
    before = weights_by_layer(base)
    _fit_once(model, pictures)
    after = weights_by_layer(base)
    assert not any(changed(before, after, layer.name) for layer in base.layers)


def test_recompile_argument_keeps_frozen_weights_frozen_without_a_warning(pictures):
    base, model = _small_trained(pictures, run_eagerly=False)
    assert _stale_warnings(lambda: base.freeze_until("block2_conv1", recompile=model)) == []
    before = weights_by_layer(base)
    _fit_once(model, pictures)
    after = weights_by_layer(base)
    assert {name for name in before if changed(before, after, name)} == {
        "block2_conv1", "block2_conv2"
    }


@pytest.mark.parametrize(
    "change",
    [
        lambda base: base.freeze(),
        lambda base: base.freeze_until("block2_conv1"),
        lambda base: base.freeze_through("block1"),
        lambda base: base.unfreeze_last_block(),
        lambda base: setattr(base, "trainable", False),  # Keras' own idiom
    ],
    ids=["freeze", "freeze_until", "freeze_through", "unfreeze_last_block", "trainable=False"],
)
def test_every_freezing_change_after_training_warns(pictures, change, request):
    whole = "unfreeze_last_block" in request.node.name  # block 5 must be there
    base, _ = _small_trained(pictures[:4], run_eagerly=True,
                             output_layer=None if whole else "block2")
    caught = _stale_warnings(lambda: change(base))
    assert len(caught) == 1 and caught[0].filename == __file__


def test_unfreeze_after_training_a_frozen_base_warns(pictures):
    base = PretrainedBase("vgg16", input_shape=(32, 32, 3), weights=None, output_layer="block1")
    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, add_classifier_head(base(inputs), hidden_units=None, dropout=0.0, logits=True))
    base.freeze_until("block1_conv2")
    model.compile(keras.optimizers.SGD(1e-6), LOGITS_LOSS, run_eagerly=True)
    _fit_once(model, pictures)
    assert len(_stale_warnings(base.unfreeze)) == 1
    # No change at all (already unfrozen): nothing to warn about.
    assert _stale_warnings(base.unfreeze) == []


def test_no_warning_when_no_compiled_model_can_be_stale(pictures):
    base = PretrainedBase("vgg16", input_shape=(32, 32, 3), weights=None, output_layer="block1")
    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, add_classifier_head(base(inputs), hidden_units=None, dropout=0.0, logits=True))
    model.compile(keras.optimizers.SGD(1e-6), LOGITS_LOSS, run_eagerly=True)
    # Compiled, not trained yet: the first fit sees the new flags.
    assert _stale_warnings(lambda: base.freeze_until("block1_conv2")) == []
    # Running without training (predict, feature extraction) changes no weight.
    model.predict(pictures, verbose=0)
    base(pictures, training=True)
    assert _stale_warnings(base.freeze) == []
    before = weights_by_layer(base)
    _fit_once(model, pictures)
    assert not any(changed(before, weights_by_layer(base), name) for name in before)


def test_a_change_after_compiling_again_by_hand_does_not_warn(pictures):
    """model.compile(...) after training, then a change: the next fit makes a new train step."""
    base, model = _small_trained(pictures[:4], run_eagerly=True)
    model.compile(keras.optimizers.SGD(1e-6), LOGITS_LOSS, run_eagerly=True)
    assert _stale_warnings(lambda: base.freeze_until("block2_conv1")) == []
    assert not trainable_summary(model).stale
    before = weights_by_layer(base)
    _fit_once(model, pictures[:4])
    after = weights_by_layer(base)
    assert {name for name in before if changed(before, after, name)} == {
        "block2_conv1", "block2_conv2"
    }


def test_a_model_left_out_of_recompile_is_named(pictures):
    base, first = _small_trained(pictures[:4], run_eagerly=True)
    inputs = keras.Input((32, 32, 3))
    second = keras.Model(
        inputs, add_classifier_head(base(inputs), hidden_units=None, dropout=0.0, logits=True),
        name="second",
    )
    second.compile(keras.optimizers.SGD(1e-6), LOGITS_LOSS, run_eagerly=True)
    _fit_once(second, pictures[:4])
    caught = _stale_warnings(lambda: base.freeze(recompile=first))
    assert len(caught) == 1 and caught[0].filename == __file__
    assert str(caught[0].message).startswith(
        "Model 'second' trained before this change to the trainable weights of 'vgg16'"
    )
    assert not trainable_summary(first).stale and trainable_summary(second).stale
    assert _stale_warnings(lambda: base.unfreeze(recompile=[first, second])) == []


# ---------------------------- the classic mistake: freeze, fit the head, unfreeze a block


@pytest.fixture
def trained_head(pictures):
    """MobileNetV2 (random weights, 32 px), fully frozen, whose head trained once."""
    base = PretrainedBase("mobilenet_v2", input_shape=(32, 32, 3), weights=None, pooling="avg")
    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Dense(1, name="out")(base(inputs, training=False))
    model = keras.Model(inputs, outputs, name="classifier")
    base.freeze()
    model.compile(keras.optimizers.SGD(0.1), LOGITS_LOSS)
    _fit_once(model, pictures[:4])
    return base, model


def test_unfreezing_a_block_of_a_frozen_base_after_fit_warns(trained_head, pictures):
    """Issue 23: the check looked at the base's own trainable weights, and a frozen base has none.

    The head trained with the whole base frozen; freeze_until then lets
    block_16 train, without compiling again: the train step Keras made for
    the head only would leave block_16 as it is (TensorFlow) or fail (JAX,
    PyTorch), and nothing said so.
    """
    base, model = trained_head
    caught = _stale_warnings(lambda: base.freeze_until("block_16_expand"))
    assert len(caught) == 1
    assert caught[0].filename == __file__  # at the freezing call
    message = str(caught[0].message)
    assert "Model 'classifier' trained before this change" in message
    assert "recompile=model" in message and "model.compile(...)" in message
    # The summary says which layers the flags call trainable but the train step does not train.
    summary = trainable_summary(model)
    assert summary.stale_models == ("classifier",)
    block_16 = [
        layer.name for layer in base.layers if layer.name.startswith("block_16") and layer.weights
    ]
    assert set(summary.not_trained_layers) == set(block_16) | {"Conv_1", "Conv_1_bn"}
    assert summary.still_trained_layers == ()
    assert "STALE COMPILE: 'classifier'" in str(summary)
    assert "trainable, not in its train step (8): block_16_expand" in str(summary)
    assert base.trainable_summary().stale_models == ("classifier",)
    # Compiling again, as the warning says: the kernel trains and the summary is clean.
    model.compile(keras.optimizers.SGD(0.1), LOGITS_LOSS)
    assert not trainable_summary(model).stale
    kernel = np.array(keras.ops.convert_to_numpy(base.get_layer("block_16_expand").kernel))
    _fit_once(model, pictures[:4])
    moved = keras.ops.convert_to_numpy(base.get_layer("block_16_expand").kernel)
    assert not np.array_equal(kernel, moved)
    assert not trainable_summary(model).stale


def test_freezing_back_to_what_the_train_step_trains_is_not_stale(trained_head):
    base, model = trained_head
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StaleCompileWarning)
        base.unfreeze()
    assert trainable_summary(model).stale
    assert _stale_warnings(base.freeze) == []  # back to the set the train step trains
    assert not trainable_summary(model).stale


def test_summary_names_frozen_layers_that_still_train(pictures):
    base, model = _small_trained(pictures[:4], run_eagerly=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StaleCompileWarning)
        base.freeze_until("block2_conv1")
    summary = trainable_summary(model)
    assert summary.stale_models == (model.name,)
    assert summary.still_trained_layers == ("block1_conv1", "block1_conv2")
    assert summary.not_trained_layers == ()
    assert "frozen, still in its train step (2): block1_conv1, block1_conv2" in str(summary)
    base.freeze_until("block2_conv1", recompile=model)
    assert not trainable_summary(model).stale


# ------------------------------------------------- fine-tuning really trains...


def _fit_once(model, pictures):
    labels = np.array([0, 1] * (len(pictures) // 2), dtype="float32")
    model.fit(pictures, labels, batch_size=4, epochs=1, verbose=0)


def test_fine_tuning_updates_only_the_unfrozen_layers(vgg16, pictures):
    keras.utils.set_random_seed(1)
    model = _compiled_model(vgg16, logits=True)  # a saturated sigmoid would stop the gradients
    # Phase 1: frozen base, only the head trains.
    vgg16.freeze(recompile=model)
    before = weights_by_layer(model)
    _fit_once(model, pictures)
    after = weights_by_layer(model)
    assert not any(changed(before, after, layer.name) for layer in vgg16.layers)
    assert changed(before, after, "head_dense") and changed(before, after, "head_output")
    # Phase 2: block5 + head train, blocks 1-4 stay exactly as they were.
    vgg16.freeze_until("block5_conv1", recompile=model, optimizer=keras.optimizers.RMSprop(1e-5))
    before = after
    _fit_once(model, pictures)
    after = weights_by_layer(model)
    moved = {name for name in before if changed(before, after, name)}
    assert moved == {"block5_conv1", "block5_conv2", "block5_conv3", "head_dense", "head_output"}
