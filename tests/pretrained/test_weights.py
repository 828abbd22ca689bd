"""Weights: Keras' download/cache path, offline errors, local files and what is wrong with them."""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_smalldata.pretrained import PretrainedBase, get_architecture, keras_cache_dir

NOTOP = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
SHAPE = (32, 32, 3)
SHARED_WEIGHTS = Path(__file__).resolve().parents[3] / "shared" / "weights"

# Run in a fresh process: Keras reads KERAS_HOME once, when it is imported.
# Every download goes to a proxy on a closed port, so it fails at once even on
# a machine with network access.
_OFFLINE_SCRIPT = r"""
import json, os, sys, warnings
from pathlib import Path
import keras
from keras_smalldata.pretrained import (
    PretrainedBase, RandomWeightsFallbackWarning, keras_cache_dir, pretrained_base_or_random)

out = {"cache_dir": keras_cache_dir()}
# Where Keras itself puts a file it fetches (a local one, no network needed).
fetched = keras.utils.get_file("probe.txt", origin=Path(sys.argv[1]).as_uri(),
                               cache_subdir="models")
out["keras_folder"] = os.path.dirname(fetched)
try:
    PretrainedBase("vgg16", input_shape=(32, 32, 3))
except FileNotFoundError as error:
    out["vgg16"] = {"type": type(error).__name__, "message": str(error),
                    "cause": str(error.__cause__), "cause_type": type(error.__cause__).__name__}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    base, weights = pretrained_base_or_random("vgg16", input_shape=(32, 32, 3))
out["fallback"] = {
    "weights": weights, "shape": list(base.output.shape[1:]),
    "warnings": [str(w.message) for w in caught
                 if issubclass(w.category, RandomWeightsFallbackWarning)],
}
sys.stderr.write("PLAIN CALL\n")
pretrained_base_or_random("vgg16", input_shape=(32, 32, 3))  # as a script calls it
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    """What a fresh Python sees with an empty KERAS_HOME and no network."""
    root = tmp_path_factory.mktemp("offline")
    probe = root / "probe.txt"
    probe.write_text("probe")
    home = root / "keras_home"
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("no_proxy",)}
    env.update(KERAS_HOME=str(home), https_proxy="http://127.0.0.1:9",
               http_proxy="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9",
               HTTP_PROXY="http://127.0.0.1:9", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", _OFFLINE_SCRIPT, str(probe)], env=env,
                            capture_output=True, text=True, timeout=600)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, result.stdout[-2000:] + result.stderr[-3000:]
    return home, json.loads(lines[0][len("RESULT "):]), result.stderr


def test_keras_cache_dir_is_where_keras_puts_files(offline):
    home, out, _ = offline
    assert out["cache_dir"] == out["keras_folder"] == str(home / "models")


def test_offline_imagenet_error_says_what_where_and_how(offline):
    home, out, _ = offline
    error = out["vgg16"]
    assert error["type"] == "WeightsDownloadError"  # a FileNotFoundError
    # Keras' own failure is the cause, and names the URL it tried.
    assert error["cause_type"] == "Exception" and "URL fetch failure on " in error["cause"]
    url = error["cause"].split("URL fetch failure on ")[1].split(": ")[0]
    assert url.rsplit("/", 1)[1] == NOTOP
    message = error["message"]
    cached = str(home / "models" / NOTOP)
    assert f"the file '{NOTOP}' is not in Keras' cache" in message
    assert f"Keras looks for it at '{cached}'" in message
    assert f"download {url} on a machine with network access and copy it to '{cached}'" in message
    assert "Keras checks its MD5 hash 6d6bbae143d832006294945121d1f1fc" in message
    assert f"PretrainedBase('VGG16', weights='/path/to/{NOTOP}')" in message
    assert "weights=None" in message


def test_fallback_to_random_weights_is_loud(offline):
    _, out, stderr = offline
    fallback = out["fallback"]
    assert fallback["weights"] is None and fallback["shape"] == [1, 1, 512]
    assert len(fallback["warnings"]) == 1 and NOTOP in fallback["warnings"][0]
    plain = stderr.split("PLAIN CALL", 1)[1]
    assert plain.count("RANDOM weights") == 1, plain  # once, not twice
    assert "KERAS_HOME" in plain


def _cached_mobilenet_v2():
    """Keras' real MobileNetV2 download, where the shared weights are installed."""
    spec = get_architecture("MobileNetV2")
    path = Path(keras_cache_dir()) / spec.weights_file
    if not SHARED_WEIGHTS.is_dir() or not path.is_file():
        pytest.skip("needs the shared ImageNet weights installed in Keras' cache")
    return path


def _build_quietly(*args, **kwargs):
    with warnings.catch_warnings():
        # Keras: weights for 224x224 are loaded for another input size.
        warnings.filterwarnings("ignore", message=".*will be loaded as the default")
        return PretrainedBase(*args, **kwargs)


def test_imagenet_loads_keras_cached_file():
    path = _cached_mobilenet_v2()
    imagenet = _build_quietly("mobilenetv2", input_shape=SHAPE, weights="imagenet")
    from_file = _build_quietly("mobilenetv2", input_shape=SHAPE, weights=path)
    _assert_same_weights(imagenet, from_file)
    assert imagenet.train_batchnorm is False
    assert imagenet.get_config()["weights"] is None
    random = _build_quietly("mobilenetv2", input_shape=SHAPE, weights=None)
    assert not np.array_equal(random.get_weights()[0], imagenet.get_weights()[0])


def test_keras_download_for_another_width_or_architecture_is_refused():
    path = _cached_mobilenet_v2()
    with pytest.raises(ValueError, match=r"does not match MobileNetV2\(.*alpha=0\.35\)"):
        _build_quietly("mobilenetv2", input_shape=SHAPE, weights=path,
                       application_kwargs={"alpha": 0.35})
    with pytest.raises(ValueError, match=r"does not match VGG16\(include_top=False"):
        PretrainedBase("vgg16", input_shape=SHAPE, weights=path)


def _assert_same_weights(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    assert len(wa) == len(wb) > 0
    for x, y in zip(wa, wb):
        np.testing.assert_array_equal(x, y)


def test_weights_path_round_trip(tmp_path, vgg16):
    path = tmp_path / "vgg16.weights.h5"
    vgg16.save_weights(path)
    base = PretrainedBase("vgg16", input_shape=SHAPE, weights=path)
    _assert_same_weights(base, vgg16)
    # Convolution weights do not depend on the input size.
    bigger = PretrainedBase("vgg16", input_shape=(64, 64, 3), weights=str(path))
    _assert_same_weights(bigger, vgg16)


def test_weights_of_the_full_base_load_into_a_cut_base(tmp_path, vgg16):
    vgg16.save_weights(tmp_path / "full.weights.h5")
    cut = PretrainedBase("vgg16", input_shape=SHAPE, weights=tmp_path / "full.weights.h5",
                         output_layer="block2")
    np.testing.assert_array_equal(
        cut.get_layer("block2_conv2").get_weights()[0],
        vgg16.get_layer("block2_conv2").get_weights()[0],
    )


def test_mismatched_architecture_is_a_clear_error(tmp_path):
    vgg19 = PretrainedBase("vgg19", input_shape=SHAPE, weights=None)
    vgg19.save_weights(tmp_path / "vgg19.weights.h5")
    with pytest.raises(ValueError) as info:
        PretrainedBase("vgg16", input_shape=SHAPE, weights=tmp_path / "vgg19.weights.h5")
    message = str(info.value)
    assert "does not match VGG16(include_top=False, input_shape=(32, 32, 3))" in message
    assert "shape" in message
    assert "'..._notop.h5' download" in message


def test_weights_of_a_cut_base_are_refused_for_the_full_one(tmp_path, vgg16):
    vgg16.cut_at("block3").save_weights(tmp_path / "cut.weights.h5")
    with pytest.raises(ValueError, match="could not be loaded"):
        PretrainedBase("vgg16", input_shape=SHAPE, weights=tmp_path / "cut.weights.h5")


# ------------------------------------------------ files that are not what they claim


def _whole_model_archive(tmp_path, vgg16):
    """A .keras file of a whole model (base and head), as model.save writes it."""
    inputs = keras.Input(SHAPE)
    model = keras.Model(inputs, keras.layers.Flatten()(vgg16(inputs)))
    path = tmp_path / "classifier.keras"
    model.save(path)
    return path


def test_a_keras_archive_of_a_whole_model_is_refused_with_the_way_out(tmp_path, vgg16):
    path = _whole_model_archive(tmp_path, vgg16)
    with pytest.raises(ValueError) as info:
        PretrainedBase("vgg16", input_shape=SHAPE, weights=path)
    message = str(info.value)
    assert f"weights='{path}' does not match VGG16" in message
    assert ".get_layer(<base name>).save_weights('base.weights.h5')" in message


def test_files_with_the_wrong_contents_are_named(tmp_path, vgg16):
    archive = _whole_model_archive(tmp_path, vgg16)
    zipped = tmp_path / "renamed.weights.h5"
    zipped.write_bytes(archive.read_bytes())
    empty = tmp_path / "weights.h5"
    empty.write_bytes(b"")
    vgg16.save_weights(tmp_path / "real.weights.h5")
    (tmp_path / "named.keras").write_bytes((tmp_path / "real.weights.h5").read_bytes())
    cases = {
        empty: r"is an empty file \(0 bytes\); expected an HDF5 weights file",
        zipped: r"is a zip archive, such as a whole model saved with model.save\('x.keras'\)",
        tmp_path / "named.keras": r"is an HDF5 file: rename it to end in .weights.h5; "
        r"expected a .keras archive",
    }
    for path, message in cases.items():
        with pytest.raises(ValueError, match=rf"weights='{path}' {message}"):
            PretrainedBase("vgg16", input_shape=SHAPE, weights=path)


def test_a_truncated_file_is_named_as_damaged(tmp_path, vgg16):
    vgg16.save_weights(tmp_path / "full.weights.h5")
    data = (tmp_path / "full.weights.h5").read_bytes()
    truncated = tmp_path / "truncated.weights.h5"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"could not be read: the file is damaged or truncated") as info:
        PretrainedBase("vgg16", input_shape=SHAPE, weights=truncated)
    assert str(truncated) in str(info.value)
    assert isinstance(info.value.__cause__, OSError)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.binary(min_size=1, max_size=64).filter(
           lambda b: not b.startswith((b"\x89HDF", b"PK\x03\x04"))),
       suffix=st.sampled_from([".h5", ".weights.h5", ".hdf5", ".keras"]))
def test_any_other_content_is_a_value_error_naming_the_file(tmp_path, content, suffix):
    path = tmp_path / f"some weights{suffix}"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"weights='.*some weights.*' is .*; expected "):
        PretrainedBase("vgg16", input_shape=SHAPE, weights=path)


@pytest.mark.parametrize(
    "weights, error, message",
    [
        ("missing.weights.h5", FileNotFoundError, r"weights='.*missing.weights.h5': no such file"),
        ("notes.txt", ValueError, "unsupported extension"),
        (".", ValueError, "is a folder"),
        (42, TypeError, "must be 'imagenet', None or the path"),
    ],
)
def test_bad_weights_arguments(tmp_path, monkeypatch, weights, error, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("not weights")
    with pytest.raises(error, match=message):
        PretrainedBase("vgg16", input_shape=SHAPE, weights=weights)
