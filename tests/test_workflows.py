"""The seeds' workflows across components: augmentation -> pretrained base -> head -> viz.

Each component has its own tests; these check that they compose the way the
tutorials use them, in one Functional model that saves and reloads.
"""

import keras
import numpy as np
import pytest

import keras_smalldata as ks


@pytest.fixture(scope="module")
def fine_tuning_model():
    keras.utils.set_random_seed(0)
    base = ks.PretrainedBase("vgg16", input_shape=(32, 32, 3), weights=None)
    inputs = keras.Input((32, 32, 3))
    x = ks.augmentation_preset("image_data_generator", seed=1)(inputs)
    x = base(x)
    outputs = ks.add_classifier_head(x, num_classes=2, hidden_units=16)
    model = keras.Model(inputs, outputs)
    base.freeze_until("block5_conv1")
    model.compile(keras.optimizers.RMSprop(1e-5), "binary_crossentropy", metrics=["accuracy"])
    return model, base


@pytest.fixture(scope="module")
def pictures():
    return np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")


def test_only_block5_and_head_are_trainable(fine_tuning_model):
    model, base = fine_tuning_model
    trainable = {v.path.split("/")[-2] for v in model.trainable_weights}
    assert {"block5_conv1", "block5_conv2", "block5_conv3"} <= trainable
    assert not trainable & {"block4_conv3", "block1_conv1"}
    # 3 conv layers of block 5 (3 x 2 weights) + 2 dense layers of the head (2 x 2).
    assert len(model.trainable_weights) == 10


def test_grad_cam_finds_the_last_conv_layer_inside_the_base(fine_tuning_model, pictures):
    model, _ = fine_tuning_model
    assert ks.find_last_conv_layer(model, pictures[:1]) == "vgg16/block5_conv3"
    heatmaps = ks.class_activation_maps(model, pictures).heatmaps
    assert heatmaps.shape == (4, 32, 32)
    assert np.all(np.isfinite(heatmaps)) and heatmaps.min() >= 0 and heatmaps.max() <= 1


def test_activations_inside_the_base_match_a_direct_sub_model(fine_tuning_model, pictures):
    model, base = fine_tuning_model
    activations = ks.get_activations(model, pictures, layers=["vgg16/block3_conv1"])
    # Augmentation is the identity at inference, so the base sees the pictures as they are.
    inner = keras.Model(base.inputs, base.get_layer("block3_conv1").output)
    expected = inner(pictures, training=False)
    np.testing.assert_allclose(
        activations["vgg16/block3_conv1"], keras.ops.convert_to_numpy(expected), rtol=1e-5, atol=1e-5
    )


def test_the_whole_model_survives_a_keras_round_trip(fine_tuning_model, pictures, tmp_path):
    model, _ = fine_tuning_model
    path = tmp_path / "fine_tuned.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_allclose(
        reloaded.predict(pictures, verbose=0), model.predict(pictures, verbose=0), rtol=1e-5, atol=1e-6
    )
    assert len(reloaded.trainable_weights) == len(model.trainable_weights)
