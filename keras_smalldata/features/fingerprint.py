"""The cache key's model parts, and what in a model the key cannot vouch for.

A feature cache entry is keyed by one SHA-256 over what is declared (see
``extraction.py``): here, a model's or an augmentation layer's Keras
configuration (that of the object and of every layer in it, with the layer
names Keras numbers automatically made neutral) and all its weight values;
in ``_sources.py``, the data's content.

The key determines the result only for code whose behaviour its
configuration and a version number pin down: Keras' own layers and
functions, this library's, and registered serializable layers of installed
packages (their versions join the key). `unvouched` lists everything else
(a layer class of the user's, a ``Lambda`` layer or an activation running a
function of the user's, a package installed in editable mode): no code is
read, its origin is enough to refuse it.
"""

from __future__ import annotations

import codecs
import hashlib
import importlib
import importlib.metadata
import json
import marshal
import platform
import types
from typing import Any

import keras
import numpy as np

from keras_smalldata._backend import backend_name
from keras_smalldata._models import public_attributes, walk_layers

FORMAT_VERSION = 4

# Packages whose versions are always in the key: their code is trusted.
_OWN_PACKAGES = ("keras", "keras_smalldata")
# Attributes that do not change what a layer computes at inference.
_TRAINING_ONLY = ("initializer", "regularizer", "constraint")


def digest_json(obj) -> str:
    """SHA-256 of the canonical JSON text of ``obj``."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return {"ndarray": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    return f"<{type(value).__module__}.{type(value).__qualname__}>"  # never an address


def all_layers(layer) -> list:
    """The layer and every layer nested in it, depth first, each once.

    Nested layers are a model's ``layers`` and the layers held in public
    attributes (a wrapper's ``layer``, ``forward_layer``...), as
    `walk_layers` finds them with ``into="attributes"``.
    """
    return [layer, *(item for _, item in walk_layers(layer, into="attributes"))]


# Configuration entries that record how a layer was first built, not what it
# computes (weights whose shape depends on the input are in the key with
# their values, and the data's shape is in the data's part).
_BUILD_KEYS = ("build_config", "build_input_shape")


def _neutral_names(config, names: set[str], sequential: bool = False):
    """A layer configuration with what does not change the computation left out.

    Keras numbers automatic names per session (``input_layer_3``,
    ``dense_7``): the same architecture built twice gets different names.
    Names do not change what a model computes, so they are replaced by
    ``<layer 0>``, ``<layer 1>``... in the order they appear. Only values
    under a ``"name"`` key and the first item of ``[name, node, tensor]``
    references are renamed, and only when they are names of actual layers.
    The ``trainable`` flags and the build records are left out, and so is
    the ``InputLayer`` a `keras.Sequential` gains when it is first called,
    so that a layer gives the same digest before and after its first use.
    """
    mapping: dict[str, str] = {}

    def rename(value: str) -> str:
        if value not in names:
            return value
        return mapping.setdefault(value, f"<layer {len(mapping)}>")

    def walk(node, in_sequential=False):
        if isinstance(node, dict):
            if node.get("class_name") == "__lambda__" and isinstance(node.get("config"), dict):
                return {**node, "config": _stable_lambda(node["config"])}
            if node.get("class_name") == "Sequential" and isinstance(node.get("config"), dict):
                return {k: walk(v, in_sequential=k == "config") for k, v in sorted(node.items())}
            out: dict[str, Any] = {}
            for k in sorted(node):
                if k == "trainable" or k in _BUILD_KEYS:
                    continue
                v = node[k]
                if k == "name" and isinstance(v, str):
                    out[k] = rename(v)
                elif k == "layers" and in_sequential and isinstance(v, list):
                    out[k] = [walk(item) for item in v if not _is_input_layer(item)]
                else:
                    out[k] = walk(v)
            return out
        if isinstance(node, (list, tuple)):
            items = list(node)
            if (
                len(items) == 3
                and isinstance(items[0], str)
                and all(isinstance(i, int) for i in items[1:])
            ):
                return [rename(items[0]), items[1], items[2]]
            return [walk(item) for item in items]
        return node

    return walk(config, in_sequential=sequential)


def _stable_lambda(config: dict) -> dict:
    """A serialized lambda's config with its code as what it computes, not as marshal bytes.

    Keras stores a lambda's code as ``marshal`` bytes, which flag every object
    referenced more than once at the time: the same code gives other bytes once
    a run has taken more references to its constants (seen under JAX).
    """
    code = config.get("code")
    if not isinstance(code, str):
        return config
    try:
        value = marshal.loads(codecs.decode(code.encode("ascii"), "base64"))
    except (ValueError, EOFError, TypeError, UnicodeEncodeError):
        return config
    return {**config, "code": _code_digest(value)}


def _code_digest(value) -> str:
    def describe(item):
        if isinstance(item, types.CodeType):
            return [
                item.co_code.hex(), item.co_argcount, item.co_kwonlyargcount,
                item.co_flags, list(item.co_names), list(item.co_varnames),
                list(item.co_freevars), list(item.co_cellvars),
                [describe(const) for const in item.co_consts],
            ]
        if isinstance(item, (frozenset, set)):
            return [type(item).__name__, sorted(json.dumps(describe(i)) for i in item)]
        if isinstance(item, (tuple, list)):
            return [type(item).__name__, [describe(i) for i in item]]
        return [type(item).__name__, repr(item)]

    return hashlib.sha256(json.dumps(describe(value)).encode()).hexdigest()


def _is_input_layer(item) -> bool:
    return isinstance(item, dict) and item.get("class_name") == "InputLayer"


def weights_digest(layer) -> str:
    """SHA-256 over the shape, dtype and values of every weight of ``layer``."""
    digest = hashlib.sha256()
    for variable in layer.weights:
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(variable.value))
        digest.update(f"{value.shape}|{value.dtype.str}|".encode())
        digest.update(value.data.cast("B"))
    return digest.hexdigest()


def _config(layer):
    try:
        return layer.get_config()
    except (NotImplementedError, TypeError, AttributeError, ValueError):
        return None


def _class_name(obj) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def config_digest(layer) -> str:
    """Digest of the configuration of ``layer`` and of every layer in it, names made neutral.

    Every nested layer counts with its own configuration, also inside a
    model whose ``get_config`` does not list its layers (e.g. a
    `PretrainedBase`): an activation changed in place is seen.
    """
    layers = all_layers(layer)
    names = {item.name for item in layers if isinstance(getattr(item, "name", None), str)}
    return digest_json(
        [
            [_class_name(item), _neutral_names(_config(item), names, isinstance(item, keras.Sequential))]
            for item in layers
            if not isinstance(item, keras.layers.InputLayer)
        ]
    )


# ---------------------------------------------------------------- origins


def _top_module(obj) -> str:
    module = getattr(obj, "__module__", None) or type(obj).__module__ or ""
    return module.partition(".")[0]


def installed_version(obj) -> str | None:
    """``"name==version"`` of the installed package ``obj``'s code comes from, else None.

    None for code outside installed packages (a script, a notebook, a
    module on ``PYTHONPATH``) and for a package installed in editable mode
    (``pip install -e``), whose code changes without a new version.
    """
    top = _top_module(obj)
    names = importlib.metadata.packages_distributions().get(top) or []
    if not names:
        return None
    distribution = importlib.metadata.distribution(names[0])
    direct = distribution.read_text("direct_url.json")
    if direct and json.loads(direct).get("dir_info", {}).get("editable"):
        return None
    return f"{distribution.metadata['Name']}=={distribution.version}"


def _is_registered(cls) -> bool:
    name = keras.saving.get_registered_name(cls)
    return name != cls.__name__ and keras.saving.get_registered_object(name) is cls


def unvouched(layer, allow_packages: bool = True) -> tuple[list[str], dict[str, str]]:
    """What in ``layer`` the key cannot vouch for, and the packages whose versions it needs.

    Returns ``(reasons, packages)``: one sentence per layer class or
    function that is not Keras' own or this library's (nor, with
    ``allow_packages``, a registered layer class of an installed package,
    whose ``name==version`` goes into ``packages``, or a function of that
    package held by such a layer), and per random Keras function.
    """
    reasons, packages = [], {}
    for item in all_layers(layer):
        cls = type(item)
        trusted = _OWN_PACKAGES + (_top_module(cls),)  # the functions of its own package too
        if _top_module(cls) not in _OWN_PACKAGES:
            version = installed_version(cls) if allow_packages and _is_registered(cls) else None
            if version is None:
                reasons.append(
                    f"layer {item.name!r} is of class {cls.__qualname__} from "
                    f"{cls.__module__!r}, code of yours (not a registered layer of an "
                    "installed package)"
                )
                continue
            packages[version.partition("==")[0]] = version
        for name, value in public_attributes(item):
            function = getattr(value, "func", value)  # functools.partial
            if (
                not callable(function)
                or isinstance(function, (type, keras.layers.Layer))
                or any(word in name for word in _TRAINING_ONLY)
            ):
                continue
            label = getattr(function, "__qualname__", type(function).__qualname__)
            kind = "Lambda layer" if isinstance(item, keras.layers.Lambda) else "layer"
            module = getattr(function, "__module__", None) or ""
            if _top_module(function) not in trusted:
                reasons.append(
                    f"{kind} {item.name!r} runs the function {label} from "
                    f"{_top_module(function)!r} ({name}=), code of yours"
                )
            elif "random" in module.split("."):  # keras.random.dropout...
                reasons.append(f"{kind} {item.name!r} runs {label}, a random function")
    return reasons, packages


def environment(reads_tf_data: bool) -> dict:
    """Versions that change computed features: Python, NumPy, Keras, this library, the backend.

    TensorFlow's version counts too when the data comes through `tf.data`
    (it decodes and resizes the pictures), whatever the backend.
    """
    from keras_smalldata import __version__

    backend = backend_name()
    names = {backend, "tensorflow"} if reads_tf_data else {backend}
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "keras": keras.__version__,
        "keras_smalldata": __version__,
        "backend": backend,
        **{name: getattr(importlib.import_module(name), "__version__", None) for name in names},
    }
