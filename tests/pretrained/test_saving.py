"""Saving: .keras round trips keep weights, freezing state and preprocessing; no download."""

import keras
import numpy as np
import pytest

from keras_smalldata.pretrained import PretrainedBase, add_classifier_head
from keras_smalldata.pretrained import base as base_module


@pytest.fixture(autouse=True)
def _no_imagenet(monkeypatch):
    """Rebuilding from a config must never ask Keras for the ImageNet weights."""

    def refuse(*args, **kwargs):
        raise AssertionError("the ImageNet weights were asked for")

    monkeypatch.setattr(base_module, "build_with_imagenet_weights", refuse)


def _flags(base):
    return [layer.trainable for layer in base.layers]


def _model_around(base, shape=(32, 32, 3)):
    inputs = keras.Input(shape)
    return keras.Model(inputs, add_classifier_head(base(inputs), hidden_units=8))


# The optimizer was never built (no fit): Keras says it skips its 2 variables.
@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_round_trip_keeps_everything(tmp_path, vgg16, pictures):
    model = _model_around(vgg16)
    vgg16.freeze_until("block5_conv1")
    model.compile(keras.optimizers.RMSprop(1e-5), "binary_crossentropy", metrics=["accuracy"])
    path = tmp_path / "finetune.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    base = loaded.get_layer("vgg16")
    assert isinstance(base, PretrainedBase)
    assert base.layers[1].mode == "caffe"
    assert _flags(base) == _flags(vgg16)
    assert base.trainable_summary().trainable_params == vgg16.trainable_summary().trainable_params
    assert len(loaded.trainable_weights) == len(model.trainable_weights) == 10
    assert base.last_conv_layer_name == "block5_conv3"
    np.testing.assert_allclose(
        loaded.predict(pictures, verbose=0), model.predict(pictures, verbose=0), rtol=1e-5, atol=1e-6
    )
    assert isinstance(loaded.optimizer, keras.optimizers.RMSprop)
    vgg16.unfreeze()


def test_round_trip_of_a_frozen_base(tmp_path, vgg16):
    model = _model_around(vgg16)
    vgg16.freeze()
    model.save(tmp_path / "frozen.keras")
    loaded = keras.models.load_model(tmp_path / "frozen.keras").get_layer("vgg16")
    assert loaded.trainable is False and loaded.trainable_weights == []
    vgg16.unfreeze()


def test_round_trip_of_a_cut_pooled_base(tmp_path, vgg16, pictures):
    cut = vgg16.cut_at("block3", pooling="avg")
    assert cut.output.shape == (None, 256)
    model = _model_around(cut)
    model.save(tmp_path / "cut.keras")
    loaded = keras.models.load_model(tmp_path / "cut.keras")
    base = loaded.get_layer(cut.name)
    assert base.output_layer == "block3_pool" and base.pooling == "avg"
    assert [layer.name for layer in base.layers] == [layer.name for layer in cut.layers]
    np.testing.assert_allclose(
        loaded.predict(pictures, verbose=0), model.predict(pictures, verbose=0), rtol=1e-5, atol=1e-6
    )


def test_config_never_asks_for_imagenet(vgg16):
    config = vgg16.get_config()
    assert config["weights"] is None
    assert config["architecture"] == "VGG16"
    clone = PretrainedBase.from_config({**config, "weights": "imagenet"})  # still no download
    assert [layer.name for layer in clone.layers] == [layer.name for layer in vgg16.layers]


def test_auto_numbered_layers_keep_their_frozen_state(tmp_path):
    """Freezing by index survives a reload even though auto names change."""
    base = PretrainedBase(
        "MobileNetV3Small", input_shape=(32, 32, 3), weights=None,
        application_kwargs={"alpha": 0.75, "minimalistic": True}, train_batchnorm=False,
    )
    base.freeze_until(100)
    model = _model_around(base)
    model.save(tmp_path / "v3.keras")
    loaded = keras.models.load_model(tmp_path / "v3.keras").get_layer(base.name)
    assert [layer.name for layer in loaded.layers] != [layer.name for layer in base.layers]
    assert _flags(loaded) == _flags(base)
    assert loaded.train_batchnorm is False
    assert loaded.get_config()["frozen_ranges"] == base.get_config()["frozen_ranges"]


def test_dtype_policy_round_trips(tmp_path):
    """get_config carries Keras' layer entries (name, trainable, dtype), and they are obeyed."""
    previous = keras.config.dtype_policy()
    base = PretrainedBase("vgg16", input_shape=(32, 32, 3), weights=None, output_layer="block1",
                          dtype="mixed_bfloat16", name="half", trainable=False)
    assert keras.config.dtype_policy() == previous  # the global policy is left alone
    assert base.get_layer("block1_conv1").dtype_policy.name == "mixed_bfloat16"
    config = base.get_config()
    assert (config["name"], config["trainable"]) == ("half", False)
    assert keras.dtype_policies.get(config["dtype"]).name == "mixed_bfloat16"
    model = _model_around(base)
    model.save(tmp_path / "half.keras")
    loaded = keras.models.load_model(tmp_path / "half.keras").get_layer("half")
    assert loaded.get_layer("block1_conv1").dtype_policy.name == "mixed_bfloat16"
    assert loaded.trainable is False and loaded.get_config() == config


# ------------------- loading in a new session after a plain `import keras_smalldata`

_LOAD = """
import sys
{imports}
model = keras.models.load_model(sys.argv[1])
print([type(layer).__name__ for layer in model.layers])
print(keras.ops.convert_to_numpy(model(np.full((1, 32, 32, 3), 100.0))).round(5).tolist())
"""


@pytest.mark.parametrize(
    "imports",
    [
        "import keras, numpy as np\nimport keras_smalldata",
        "import keras_smalldata\nimport keras, numpy as np",
        "import keras_smalldata as ks, numpy as np\nkeras = ks.import_keras_quietly()",
    ],
    ids=["keras first", "keras_smalldata first", "import_keras_quietly"],
)
def test_a_keras_file_with_the_librarys_layers_loads_after_a_plain_import(tmp_path, imports):
    """Issue 23: "Could not locate class": the lazy import registered nothing."""
    import subprocess
    import sys
    from pathlib import Path

    from keras_smalldata.augment import RandomAffine, RandomChannelShift

    base = PretrainedBase("mobilenet_v2", input_shape=(32, 32, 3), weights=None,
                          application_kwargs={"alpha": 0.35}, output_layer="block_1",
                          pooling="avg")
    inputs = keras.Input((32, 32, 3))
    x = RandomAffine(rotation_range=10, seed=2)(RandomChannelShift(10.0, seed=1)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2, name="logits")(base(x)))
    path = tmp_path / "model.keras"
    model.save(path)
    expected = keras.ops.convert_to_numpy(model(np.full((1, 32, 32, 3), 100.0))).round(5)
    result = subprocess.run(
        [sys.executable, "-c", _LOAD.format(imports=imports), str(path)],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr[-2000:]
    names, outputs = result.stdout.strip().splitlines()[-2:]
    assert names == str(["InputLayer", "RandomChannelShift", "RandomAffine", "PretrainedBase",
                         "Dense"])
    np.testing.assert_allclose(eval(outputs), expected, atol=1e-4)


def test_every_registered_serializable_is_registered_when_keras_loads():
    """The list of modules imported when Keras loads names every registering module."""
    import ast
    from pathlib import Path

    import keras_smalldata
    from keras_smalldata._startup import SERIALIZABLE_MODULES

    root = Path(keras_smalldata.__file__).parent
    registering = set()
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and any(
                "register_keras_serializable" in ast.unparse(d) for d in node.decorator_list
            ):
                module = ".".join(path.relative_to(root.parent).with_suffix("").parts)
                registering.add(module)
    assert registering and registering == set(SERIALIZABLE_MODULES)
