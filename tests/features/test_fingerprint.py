"""The key's parts: what makes two models or datasets the same, and what the key cannot vouch for."""

import functools

import keras
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_smalldata._function_cache import model_signature
from keras_smalldata.features._sources import ContentDigest, files_digest
from keras_smalldata.features.fingerprint import config_digest, unvouched


def _vgg16():
    return keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))


def test_rebuilt_vgg16_has_the_same_architecture_digest():
    first, second = _vgg16(), _vgg16()
    # Keras numbers the input layer per session: the names differ...
    assert first.layers[0].name != second.layers[0].name
    # ...but not what the model computes.
    assert config_digest(first) == config_digest(second)
    assert unvouched(first) == ([], {})  # Keras' own layers: the key vouches for them
    cut = keras.Model(first.input, first.get_layer("block4_pool").output)
    assert config_digest(cut) != config_digest(first)
    wider = keras.applications.VGG16(weights=None, include_top=False, input_shape=(48, 48, 3))
    assert config_digest(wider) != config_digest(first)


def test_dtype_policy_and_activation_count():
    def build(activation, dtype=None):
        inputs = keras.Input((4,))
        return keras.Model(inputs, keras.layers.Dense(3, activation=activation, dtype=dtype)(inputs))

    assert config_digest(build("relu")) == config_digest(build("relu"))
    assert config_digest(build("relu")) != config_digest(build("tanh"))
    assert config_digest(build("relu")) != config_digest(build("relu", "float16"))


def test_trainable_flag_does_not_count_in_the_key_but_in_the_structure():
    model = _vgg16()
    before, structure = config_digest(model), model_signature(model)
    model.trainable = False
    assert config_digest(model) == before
    assert model_signature(model) != structure  # a compiled call is made for one trainable state


def test_structure_follows_layers_changed_in_place_but_not_weight_values():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="out")(inputs))
    structure = model_signature(model)
    model.get_layer("out").set_weights([np.ones((4, 3)), np.zeros(3)])
    assert model_signature(model) == structure
    model.get_layer("out").activation = keras.activations.linear
    assert model_signature(model) != structure


def test_a_layer_inside_a_model_with_its_own_get_config_counts():
    # PretrainedBase's get_config names its architecture, not its layers:
    # an activation changed in place inside it still changes the digest.
    from keras_smalldata.pretrained import PretrainedBase

    base = PretrainedBase("MobileNetV2", weights=None, input_shape=(32, 32, 3))
    before = config_digest(base)
    base.get_layer("Conv1").activation = keras.activations.tanh
    assert config_digest(base) != before


def _user_function(x):
    return x * 2.0


def test_what_the_key_cannot_vouch_for():
    def reasons(layer):
        inputs = keras.Input((4, 4, 3))
        return unvouched(keras.Model(inputs, layer(inputs)))[0]

    class Mine(keras.layers.Layer):
        def call(self, x):
            return x

        def compute_output_shape(self, input_shape):
            return input_shape

    assert reasons(keras.layers.Lambda(keras.ops.abs)) == []  # a Keras function
    assert reasons(keras.layers.Dense(2, kernel_initializer=lambda s, dtype=None: keras.ops.ones(s))) == []
    for layer, named in (
        (keras.layers.Lambda(_user_function), "_user_function"),
        (keras.layers.Lambda(functools.partial(_user_function)), "_user_function"),
        (keras.layers.Dense(2, activation=_user_function), "activation="),
        (Mine(), "Mine"),
        (keras.layers.TimeDistributed(Mine()), "Mine"),  # inside a Keras wrapper
        (keras.layers.Lambda(keras.random.dropout, (4, 4, 3), arguments={"rate": 0.5}), "random"),
    ):
        found = reasons(layer)
        assert len(found) == 1 and named in found[0], found


def test_this_librarys_layers_are_vouched_for():
    from keras_smalldata.augment import augmentation_preset
    from keras_smalldata.pretrained import PretrainedBase

    base = PretrainedBase("MobileNetV2", weights=None, input_shape=(32, 32, 3))
    for component in (base, augmentation_preset("flip_rotate_zoom", seed=1)):
        assert unvouched(component) == ([], {})


_PAIRS = st.lists(
    st.tuples(st.binary(min_size=12, max_size=12), st.integers(0, 3)), min_size=1, max_size=12
)


@settings(max_examples=40, deadline=None)
@given(pairs=_PAIRS, data=st.data())
def test_content_digest_is_order_free_and_sees_every_pair(pairs, data):
    def digest(items, batch):
        content = ContentDigest()
        for start in range(0, len(items), batch):
            block = items[start : start + batch]
            images = np.stack([np.frombuffer(b, np.uint8).reshape(2, 2, 3) for b, _ in block])
            content.add(images, np.array([label for _, label in block]))
        return content.hexdigest()

    original = digest(pairs, 4)
    shuffled = data.draw(st.permutations(pairs))
    assert digest(shuffled, 4) == original
    index = data.draw(st.integers(0, len(pairs) - 1))
    image, label = pairs[index]
    changed = list(pairs)
    changed[index] = (image, label + 1)
    assert digest(changed, 4) != original
    flipped = bytes([image[0] ^ 1]) + image[1:]
    changed[index] = (flipped, label)
    assert digest(changed, 4) != original
    if len(pairs) > 1:
        assert digest(pairs, 1) != original  # the same pairs in other batches


_NAMES = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\"),
    min_size=1,
    max_size=20,
).filter(lambda n: n not in (".", "..") and len(n.encode("utf-8")) < 200)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    files=st.dictionaries(_NAMES, st.binary(max_size=64), min_size=1, max_size=5),
    data=st.data(),
)
def test_files_digest_follows_every_byte(tmp_path_factory, files, data):
    folder = tmp_path_factory.mktemp("pictures")
    paths = {}
    for name, content in files.items():
        paths[name] = folder / name
        paths[name].write_bytes(content)
    original = files_digest(list(paths.values()))
    assert files_digest(list(reversed(paths.values()))) == original  # order-free
    name = data.draw(st.sampled_from(sorted(files)))
    changed = data.draw(st.binary(max_size=64).filter(lambda b: b != files[name]))
    paths[name].write_bytes(changed)
    assert files_digest(list(paths.values())) != original
    paths[name].write_bytes(files[name])
    assert files_digest(list(paths.values())) == original
    renamed = paths[name].with_name(paths[name].name + " (1).png")
    paths[name].rename(renamed)
    assert files_digest([renamed if p == paths[name] else p for p in paths.values()]) != original
