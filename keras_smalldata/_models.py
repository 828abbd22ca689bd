"""Facts about Keras models that several sub-packages need: checks, layer walks, conv types.

Every layer has a *path* inside the model that holds it: the names of the
layers it is nested in, then its own name, joined with ``/``
(``"vgg16/block3_conv1"``). `walk_layers` is the one walk over nested layers;
`resolve_layer` finds one layer from a path, a name or the layer itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import keras

from keras_smalldata._arguments import closest, received

# The convolution layers of Keras whose output is a spatial feature map.
CONVOLUTION_TYPES = (
    keras.layers.Conv2D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv2D,
    keras.layers.Conv2DTranspose,
)

# What `walk_layers` walks into.
_INTO = ("models", "layers", "attributes")


def check_model(model, name: str = "model") -> keras.Model:
    """Returns ``model`` if it is a `keras.Model`; raises a TypeError naming it otherwise."""
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`{name}` must be a keras.Model (Functional, Sequential or subclassed). "
            f"Received: {name}={model!r} of type {type(model).__name__}."
        )
    return model


def public_attributes(layer) -> list[tuple[str, object]]:
    """``(name, value)`` of ``layer``'s public attributes (names without a leading underscore)."""
    return [(name, value) for name, value in vars(layer).items() if not name.startswith("_")]


def _sub_layers(layer, into: str) -> list:
    if into == "models" and not isinstance(layer, keras.Model):
        return []
    inner = list(getattr(layer, "layers", None) or [])
    if into == "attributes":
        for _, value in public_attributes(layer):
            inner.extend(value if isinstance(value, (list, tuple)) else [value])
        if hasattr(layer, "named_children"):  # PyTorch keeps sub-layers out of vars()
            inner.extend(child for name, child in layer.named_children() if name[0] != "_")
    return [item for item in inner if isinstance(item, keras.layers.Layer)]


def walk_layers(
    layer, *, into: str = "layers", inputs: bool = True
) -> Iterator[tuple[str, keras.layers.Layer]]:
    """Yields ``(path, sub_layer)`` for the layers nested in ``layer``, depth first.

    Each layer is yielded once, at the first path it is found at, even when it
    is shared; ``layer`` itself is not yielded. A layer holding others is
    yielded before them.

    Args:
        layer: A Keras layer or model.
        into: Which layers are walked into: ``"models"``, the ``layers`` of
            `keras.Model`s; ``"layers"``, the ``layers`` of any layer that
            lists some (a `keras.layers.Pipeline` too); ``"attributes"``,
            also the layers held in public attributes (a wrapper's ``layer``;
            under PyTorch, public ``torch.nn.Module`` children).
        inputs: Whether `keras.layers.InputLayer`s are yielded.

    Example:

    ```python
    [path for path, _ in walk_layers(model, into="models", inputs=False)]
    # ['vgg16', 'vgg16/block1_conv1', ..., 'dense']
    ```
    """
    if into not in _INTO:
        raise ValueError(f"`into` must be one of {list(_INTO)}. {received('into', into)}")
    seen = {id(layer)}
    stack = [(child.name, child) for child in reversed(_sub_layers(layer, into))]
    while stack:
        path, current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if inputs or not isinstance(current, keras.layers.InputLayer):
            yield path, current
        stack.extend(
            (f"{path}/{child.name}", child) for child in reversed(_sub_layers(current, into))
        )


def nested_layers(layer) -> Iterator[keras.layers.Layer]:
    """The layers of `walk_layers` (``into="layers"``), without their paths."""
    return (sub_layer for _, sub_layer in walk_layers(layer))


def unique_variables(variables) -> list:
    """``variables`` in order, each once (by identity: a shared weight counts once)."""
    seen: set[int] = set()
    unique = []
    for variable in variables:
        if id(variable) not in seen:
            seen.add(id(variable))
            unique.append(variable)
    return unique


def contains_layer(model, target) -> bool:
    """True when ``target`` is ``model`` or one of its (nested) layers."""
    return model is target or any(layer is target for layer in nested_layers(model))


def resolve_layer(
    model,
    layer,
    *,
    argument: str = "layer",
    label: Callable[[object], str] | None = None,
    owner: str | None = None,
    inputs: bool = False,
    nested: bool = True,
    blocks: Mapping[str, keras.layers.Layer] | None = None,
    suggest: Callable[[keras.layers.Layer], bool] | None = None,
    listing: str = "Use keras_smalldata.viz.layer_paths(model) to list them all.",
) -> tuple[str, keras.layers.Layer]:
    """Finds one layer of ``model`` (nested models walked into) from a reference.

    Accepted forms of ``layer``: a full path (``"vgg16/block3_conv1"``); a
    bare name or a path suffix (``"block3_conv1"``) that exactly one layer
    matches; a name in ``blocks``; the `keras.layers.Layer` object itself.

    Args:
        model: The model to search.
        layer: The reference.
        argument: The caller's name for ``layer``, for messages.
        label: ``label(value)`` names the call in messages (default:
            ``"layer='value'"``).
        owner: What holds the layers, for messages (default:
            ``"model 'name'"``).
        inputs: Whether input layers may be named.
        nested: Whether the layers of nested models may be named (else
            only the layers in ``model.layers``).
        blocks: Further names, each standing for one layer (a block name).
        suggest: Which layers may be offered as closest names (default: all).
        listing: The message's last sentence, saying where all names are.

    Returns:
        ``(path, layer_object)``.

    Raises:
        TypeError: When ``layer`` is neither a string nor a Layer.
        ValueError: When nothing or more than one layer matches; the message
            names the value and the closest real names.
    """
    label = label or (lambda value: f"{argument}={value!r}")
    owner = owner or f"model {model.name!r}"
    if nested:
        entries = list(walk_layers(model, into="models"))
    else:
        entries = [(sub_layer.name, sub_layer) for sub_layer in model.layers]
    if isinstance(layer, keras.layers.Layer):
        for path, candidate in entries:
            if candidate is layer and (inputs or not isinstance(layer, keras.layers.InputLayer)):
                return path, candidate
        where = " nor of the models nested in it" if nested else ""
        raise ValueError(
            f"{label(layer.name)}: layer {layer.name!r} is not a layer of {owner}{where}."
        )
    if not isinstance(layer, str):
        raise TypeError(
            f"`{argument}` must be a layer path such as 'vgg16/block3_conv1', a layer "
            f"name or a keras.layers.Layer. {received(argument, layer)}"
        )
    input_paths = {p for p, c in entries if isinstance(c, keras.layers.InputLayer)}
    if not inputs:
        entries = [(p, c) for p, c in entries if p not in input_paths]
    what = "layer" if blocks is None else "layer or block"
    blocks = dict(blocks or {})
    name = layer.strip("/")
    for path, candidate in entries:
        if path == name:
            return path, candidate
    if name in blocks:
        target = blocks[name]
        return next((p for p, c in entries if c is target), name), target
    matches = [(p, c) for p, c in entries if p.endswith("/" + name)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ValueError(
            f"{label(layer)}: {name!r} is ambiguous in {owner}: it matches "
            f"{[p for p, _ in matches]}. Pass one of these full paths."
        )
    if name in input_paths:
        raise ValueError(
            f"{label(layer)}: {layer!r} is an input layer of {owner}; input layers "
            "compute nothing: use the pictures themselves."
        )
    message = f"{label(layer)}: {owner} has no {what} named {layer!r}."
    close = _closest_paths(
        name, [p for p, c in entries if suggest is None or suggest(c)] + list(blocks)
    )
    if close:
        message += f" Closest names: {close}."
    if blocks:
        message += f" Blocks: {list(blocks)}."
    raise ValueError(f"{message} {listing}")


def _closest_paths(name: str, paths: list[str]) -> list[str]:
    """Up to five of ``paths`` closest to ``name``, whole or by their last part."""
    close = closest(name, paths, n=5, cutoff=0.5)
    by_bare: dict[str, list[str]] = {}
    for path in paths:
        by_bare.setdefault(path.rsplit("/", 1)[-1], []).append(path)
    for bare in closest(name.rsplit("/", 1)[-1], list(by_bare), n=5, cutoff=0.6):
        close.extend(p for p in by_bare[bare] if p not in close)
    return close[:5]
