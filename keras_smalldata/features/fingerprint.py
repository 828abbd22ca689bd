"""Fingerprints: short digests of everything that changes extracted features.

A feature cache entry is keyed by one SHA-256 over the parts built here: the
model (its configuration with auto-generated layer names made neutral, and
every weight value), the augmentation (its configuration or its code) and the
data (see ``_sources.py``). Two inputs get the same fingerprint only when
these all agree, so a cache hit is never stale.
"""

from __future__ import annotations

import hashlib
import inspect
import json

import keras
import numpy as np

FORMAT_VERSION = 1


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


def _neutral_names(config, names: set[str]):
    """Replaces layer names by their order of first appearance.

    Keras numbers automatic names per session (``input_layer_3``,
    ``dense_7``): the same architecture built twice gets different names.
    Names do not change what a model computes, so they are replaced by
    ``<layer 0>``, ``<layer 1>``... in the order they appear. Only values
    under a ``"name"`` key and the first item of ``[name, node, tensor]``
    references are renamed, and only when they are names of actual layers.
    """
    mapping: dict[str, str] = {}

    def rename(value: str) -> str:
        if value not in names:
            return value
        if value not in mapping:
            mapping[value] = f"<layer {len(mapping)}>"
        return mapping[value]

    def walk(node, key=None):
        if isinstance(node, dict):
            out = {}
            for k in sorted(node):
                if k == "trainable":  # inference does not depend on it
                    continue
                v = node[k]
                out[k] = rename(v) if (k == "name" and isinstance(v, str)) else walk(v, k)
            return out
        if isinstance(node, (list, tuple)):
            items = list(node)
            if (
                len(items) == 3
                and isinstance(items[0], str)
                and all(isinstance(i, int) for i in items[1:])
            ):
                return [rename(items[0]), items[1], items[2]]
            return [walk(item, key) for item in items]
        return node

    return walk(config)


def _source_digest(obj) -> str | None:
    try:
        source = inspect.getsource(obj)
    except (OSError, TypeError):
        return None
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def _cell_repr(cell) -> str:
    try:
        return repr(cell.cell_contents)
    except ValueError:  # an empty cell
        return "<empty>"


def weights_digest(layer) -> str:
    """SHA-256 over the shape, dtype and values of every weight of ``layer``."""
    digest = hashlib.sha256()
    for variable in layer.weights:
        value = np.ascontiguousarray(variable.numpy())
        digest.update(f"{value.shape}|{value.dtype.str}|".encode())
        digest.update(memoryview(value).cast("B"))
    return digest.hexdigest()


def layer_config_digest(layer) -> str:
    """Digest of a layer's or model's architecture, independent of automatic names.

    Uses ``get_config()`` when the object provides it. A subclassed model
    without a usable config is described by its class, the source code of
    its class and the classes of its sub-layers.
    """
    names = {item.name for item in _all_layers(layer) if isinstance(getattr(item, "name", None), str)}
    cls = type(layer)
    description = {"class": f"{cls.__module__}.{cls.__qualname__}"}
    try:
        config = layer.get_config()
    except (NotImplementedError, TypeError, AttributeError):
        config = None
    if config is not None:
        description["config"] = _neutral_names(config, names)
    if config is None or _is_subclassed(layer):
        description["source"] = _source_digest(cls)
        description["layers"] = [
            f"{type(item).__module__}.{type(item).__qualname__}" for item in _all_layers(layer)[1:]
        ]
    return digest_json(description)


def _is_subclassed(layer) -> bool:
    """True when the object's computation lives in Python code outside Keras."""
    return not type(layer).__module__.startswith("keras.")


def model_fingerprint(model) -> dict:
    """The parts of the fingerprint that describe the model."""
    return {
        "architecture": layer_config_digest(model),
        "weights": weights_digest(model),
    }


def augmentation_fingerprint(augmentation) -> dict | None:
    """Describes an augmentation layer or callable, or returns None if it cannot.

    A Keras layer is described by its configuration (which holds its
    ``seed``) and its weights; another callable by its qualified name and
    the digest of its source code.
    """
    if augmentation is None:
        return {"augmentation": None}
    if isinstance(augmentation, keras.layers.Layer):
        return {
            "architecture": layer_config_digest(augmentation),
            "weights": weights_digest(augmentation),
        }
    target = getattr(augmentation, "func", augmentation)  # functools.partial
    source = _source_digest(target)
    if source is None:
        return None
    closure = getattr(target, "__closure__", None) or ()
    return {
        "callable": f"{getattr(target, '__module__', '')}.{getattr(target, '__qualname__', '')}",
        "source": source,
        # Values the code reads from its closure, defaults and partial
        # arguments. A value whose repr holds a memory address gives a new
        # fingerprint each session: a cache miss, never a stale hit.
        "closure": [_cell_repr(cell) for cell in closure],
        "defaults": repr(getattr(target, "__defaults__", None)),
        "args": repr(getattr(augmentation, "args", ())),
        "keywords": repr(sorted(getattr(augmentation, "keywords", {}).items())),
    }
