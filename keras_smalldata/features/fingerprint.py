"""Fingerprints: short digests of everything that changes extracted features.

A feature cache entry is keyed by one SHA-256 over the parts built here and
in ``_sources.py``:

- the model: its configuration with auto-generated layer names made neutral,
  every weight value, and the code of every layer that is not Keras' own (see
  ``_code.py``): a user-defined layer class, a ``Lambda`` layer's function, a
  custom activation function;
- the augmentation: the same for a Keras layer; for a function, its code and
  everything it references (closure, defaults, globals, helper functions);
- the data (``_sources.py``): the bytes of every picture file, or of every
  array or sample.

Code that the fingerprint cannot read completely (code outside Keras and
this package, objects implemented in C: see `layers_to_probe`) is also
checked by its output on a probe input (``_probe.py``), stored with the
entry and compared when the entry is read.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import json
import platform
import types

import keras
import numpy as np

from keras_smalldata._backend import backend_name
from keras_smalldata.features._code import CodeWalker, is_library_code

FORMAT_VERSION = 2


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
    return repr(value)


def _all_layers(layer) -> list:
    """The layer and every layer nested in it, depth first."""
    found, stack, seen = [], [layer], set()
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        found.append(current)
        stack.extend(reversed(list(getattr(current, "layers", None) or [])))
    return found


# Configuration entries that record how a layer was first built, not what it
# computes: a layer gains them when it is first called (weights whose shape
# depends on the input are digested with their values, and the data's shape
# is part of the data's fingerprint).
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
    the ``InputLayer`` a `keras.Sequential` gains when it is first called
    (``sequential``, or a nested config of class ``Sequential``), so that a
    layer gives the same digest before and after its first use.
    """
    mapping: dict[str, str] = {}

    def rename(value: str) -> str:
        if value not in names:
            return value
        if value not in mapping:
            mapping[value] = f"<layer {len(mapping)}>"
        return mapping[value]

    def walk(node, in_sequential=False):
        if isinstance(node, dict):
            if node.get("class_name") == "Sequential" and isinstance(node.get("config"), dict):
                return {k: walk(v, in_sequential=k == "config") for k, v in sorted(node.items())}
            out = {}
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


def _is_input_layer(item) -> bool:
    return isinstance(item, dict) and item.get("class_name") == "InputLayer"


def weights_digest(layer) -> str:
    """SHA-256 over the shape, dtype and values of every weight of ``layer``."""
    digest = hashlib.sha256()
    for variable in layer.weights:
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(variable.value))
        digest.update(f"{value.shape}|{value.dtype.str}|".encode())
        digest.update(memoryview(value).cast("B"))
    return digest.hexdigest()


def _config(layer):
    try:
        return layer.get_config()
    except (NotImplementedError, TypeError, AttributeError):
        return None


def layer_config_digest(layer) -> str:
    """Digest of a layer's or model's architecture, independent of automatic names.

    Uses ``get_config()``; an object without a usable config is described by
    the classes and configurations of the layers in it.
    """
    layers = _all_layers(layer)
    names = {item.name for item in layers if isinstance(getattr(item, "name", None), str)}
    cls = type(layer)
    description = {"class": f"{cls.__module__}.{cls.__qualname__}"}
    config = _config(layer)
    if config is not None:
        description["config"] = _neutral_names(config, names, isinstance(layer, keras.Sequential))
    else:
        description["layers"] = [
            [
                f"{type(item).__module__}.{type(item).__qualname__}",
                _neutral_names(_config(item), names, isinstance(item, keras.Sequential)),
            ]
            for item in layers[1:]
        ]
    return digest_json(description)


def _sublayers(layer) -> list:
    """The layers directly inside ``layer``: its ``layers``, and layers it holds (a wrapper's).

    ``InputLayer``s are left out: they compute nothing, and a
    `keras.Sequential` gains one when it is first called.
    """
    candidates = list(getattr(layer, "layers", None) or [])
    for value in vars(layer).values():
        candidates.extend(value if isinstance(value, (list, tuple)) else [value])
    found, seen = [], {id(layer)}
    for item in candidates:
        if isinstance(item, keras.layers.Layer) and not isinstance(item, keras.layers.InputLayer):
            if id(item) not in seen:
                seen.add(id(item))
                found.append(item)
    return found


def _own_code(layer, walker: CodeWalker) -> list | None:
    """A layer's class and the functions it holds (a Lambda's, an activation).

    None for a library class (Keras') holding only library functions: the
    versions in the key cover them, and Keras-internal structure (such as
    the model a `keras.Sequential` builds on its first call) stays out.
    """
    functions = {
        name: value
        for name, value in sorted(vars(layer).items())
        if isinstance(value, (types.FunctionType, functools.partial))
    }
    owners = [type(layer)] + [getattr(f, "func", f) for f in functions.values()]
    if all(is_library_code(owner) for owner in owners):
        return None
    return [
        walker.describe(type(layer)),
        {name: walker.describe(value) for name, value in functions.items()},
    ]


def _layers_code(layer, walker: CodeWalker, seen=None) -> list:
    """The code of ``layer`` and of every layer inside it that is not Keras' own, depth first."""
    seen = set() if seen is None else seen
    seen.add(id(layer))
    own = _own_code(layer, walker)
    code = [] if own is None else [own]
    for item in _sublayers(layer):
        if id(item) not in seen:
            code.extend(_layers_code(item, walker, seen))
    return code


def _describe_layer(layer, walker: CodeWalker) -> dict:
    """A Keras layer: architecture, weights and the code of each of its layers."""
    return {
        "architecture": layer_config_digest(layer),
        "weights": weights_digest(layer),
        "code": _layers_code(layer, walker),
    }


def layers_to_probe(layer, _seen=None) -> list:
    """The outermost layers in ``layer`` whose own code the fingerprint cannot fully vouch for.

    That is code outside Keras and this package (a layer class of the
    user's, a Lambda's function, a custom activation) or an object whose
    state cannot be read: ``[layer]`` when ``layer`` itself is such a layer,
    else such layers inside it, searched depth first. Their output is checked
    on the probe, and a model holding any is compiled afresh on each call,
    as tracing runs their Python code once and a value it read then (a
    global, a file) would stay baked into the compiled function.
    """
    seen = set() if _seen is None else _seen
    seen.add(id(layer))
    walker = CodeWalker(_describe_layer)
    _own_code(layer, walker)
    if walker.user_code or walker.opaque:
        return [layer]
    return [
        found
        for item in _sublayers(layer)
        if id(item) not in seen
        for found in layers_to_probe(item, seen)
    ]


@dataclasses.dataclass
class Part:
    """One part of a fingerprint, with what its static description could not cover.

    Attributes:
        description: JSON-able; goes into the cache key.
        user_code: Whether it holds code outside libraries, Keras and this
            package: its output is checked on the probe picture.
        opaque: Objects whose state could not be read.
    """

    description: object
    user_code: bool = False
    opaque: list = dataclasses.field(default_factory=list)

    @property
    def needs_probe(self) -> bool:
        return self.user_code or bool(self.opaque)


def describe(obj) -> Part:
    """Describes a model, an augmentation (layer or function) or None."""
    if obj is None:
        return Part(None)
    walker = CodeWalker(_describe_layer)
    description = walker.describe(obj)
    return Part(description, walker.user_code, sorted(set(walker.opaque)))


def environment(reads_tf_data: bool) -> dict:
    """Versions that change computed features: Python, NumPy, Keras, the backend.

    TensorFlow's version counts too when the data comes through `tf.data`
    (it decodes and resizes the pictures), whatever the backend.
    """
    backend = backend_name()
    names = {backend, "tensorflow"} if reads_tf_data else {backend}
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "keras": keras.__version__,
        "backend": backend,
        **{name: getattr(importlib.import_module(name), "__version__", None) for name in names},
    }
