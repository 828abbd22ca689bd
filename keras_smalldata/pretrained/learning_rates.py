"""`DiscriminativeOptimizer`: a learning rate per layer group, for any Keras optimizer.

Fine-tuning a pretrained base works better when the layers that learnt generic
features (the first blocks) move less than the ones that learnt specific ones
(the last blocks) and the new head. fastai calls this *discriminative learning
rates* (Howard & Ruder, 2018, "Universal Language Model Fine-tuning for Text
Classification", ULMFiT); timm's ``layer_decay`` (used to fine-tune BEiT and
ViT) gives the last block the base rate and each earlier block ``decay`` times
less.

How it works: the optimizer wraps another one (Adam, SGD, RMSprop, yours...)
and scales each variable's *step* after the wrapped optimizer has made it::

    variable = before + multiplier * (after - before)

For every optimizer whose step is proportional to the learning rate (SGD with
or without momentum, RMSprop, Adam, AdamW with its decoupled weight decay,
Adagrad, Adadelta, Adamax, Nadam, Lion, Lamb...) this is exactly a learning
rate of ``multiplier * learning_rate`` for that variable, as long as the
multiplier stays the same (momentum and velocity buffers do not depend on the
learning rate, or scale with it). The tests check it against two plain
optimizers with the two learning rates, on every backend. It happens in
``apply``, which every Keras trainer calls (JAX through ``stateless_apply``),
so it also works where the PyTorch backend swaps Adam, SGD... for fused
implementations that never call ``update_step``.

The multipliers are a variable of the optimizer, read at every step, so
`GradualUnfreezing` can hold a block still (multiplier 0) and let it train
later without compiling the model again. They follow the wrapped optimizer's
learning rate, its schedule and callbacks such as ``ReduceLROnPlateau``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import keras
import numpy as np

from keras_smalldata import _arguments as args
from keras_smalldata._models import (
    check_model,
    contains_layer,
    nested_layers,
    unique_variables,
)
from keras_smalldata._types import Tensor
from keras_smalldata.pretrained.base import PretrainedBase

OTHER_LAYERS = "other layers"
STEM = "stem"
# Keras optimizers whose step is not proportional to the learning rate, so that
# scaling the step is not the same as a lower learning rate (Keras 3.15 sources).
_NOT_PROPORTIONAL = {
    "Ftrl": "its step is a non-linear function of the learning rate",
    "Adafactor": "it caps its step size at min(learning_rate, 1/sqrt(step))",
    "ScheduleFreeAdamW": "its state holds an average of the iterates, which unscaled "
    "steps would move",
    "MultiOptimizer": "it already has one optimizer per group; wrap a single optimizer "
    "and give the groups here",
}


def block_groups(base: PretrainedBase) -> list[tuple[str, list]]:
    """The layers with weights of a base, grouped by block, from the bottom to the top.

    The groups are a partition of the base, in layer order, used by
    ``DiscriminativeOptimizer(layer_decay=...)`` and `GradualUnfreezing`:

    - the finest blocks of ``base.blocks`` (``"conv5_block1"`` rather than
      ``"conv5"`` for ResNet, ``"block6a"`` rather than ``"block6"`` for
      EfficientNet), as timm's layer decay uses the finest groups;
    - for families without block names (Inception, NASNet, MobileNet v1),
      the layers up to each stable block output (``"mixed0"``... for
      InceptionV3), named after it;
    - layers before the first block form a ``"stem"`` group; layers after a
      block (MobileNetV2's ``Conv_1``) join it.

    Args:
        base: A `PretrainedBase`.

    Returns:
        A list of ``(group name, [layers])`` pairs, bottom first; only layers
        with weights are listed.

    Example:

    ```python
    base = PretrainedBase("vgg16", input_shape=(32, 32, 3), weights=None)
    print([name for name, layers in block_groups(base)])
    ```
    """
    if not isinstance(base, PretrainedBase):
        raise TypeError(
            f"`base` must be a PretrainedBase. {args.received('base', base)}"
        )
    layers = base.layers
    owner: list[str | None] = [None] * len(layers)
    spans = base.blocks
    if spans:
        # Coarse blocks first, so that the finer ones inside them win.
        for name, (first, last) in sorted(spans.items(), key=lambda kv: kv[1][0] - kv[1][1]):
            owner[first : last + 1] = [name] * (last + 1 - first)
    elif base.architecture.landmarks:
        landmark = re.compile(base.architecture.landmarks)
        start = 0
        for index, layer in enumerate(layers):
            if landmark.match(layer.name):
                owner[start : index + 1] = [layer.name] * (index + 1 - start)
                start = index + 1
    if not any(owner):
        raise ValueError(
            f"{base.name!r} ({base.architecture.name}) has no named blocks to group its "
            "layers by. Name the groups yourself: DiscriminativeOptimizer(optimizer, "
            "model, multipliers={'layer name or re.compile(pattern)': 0.1, ...})."
        )
    groups: dict[str, list] = {}
    current = STEM
    for layer, block in zip(layers, owner):
        current = block or current
        if layer.weights:
            groups.setdefault(current, []).append(layer)
    return list(groups.items())


class _TrainedVariables:
    """The variables an optimizer was built for, in order, and their indices.

    An object of its own, so that Keras' attribute tracking does not take
    these variables of the model for the optimizer's own.
    """

    def __init__(self, variables):
        self.variables = list(variables)
        self._indices = {id(v): i for i, v in enumerate(self.variables)}

    def index(self, variable) -> int:
        """The position of ``variable``; KeyError for a variable not trained."""
        return self._indices[id(variable)]


@keras.saving.register_keras_serializable(package="keras_smalldata")
class DiscriminativeOptimizer(keras.optimizers.Optimizer):
    """Wraps any Keras optimizer to give each group of layers its own learning rate.

    Each variable's step is the wrapped optimizer's step times the
    variable's *multiplier* (exact for optimizers whose step is
    proportional to the learning rate). Groups are given by
    ``layer_decay`` over the blocks of a `PretrainedBase` (the last block
    gets the full rate, each block before it ``layer_decay`` times the
    next), by ``multipliers`` or by ``learning_rates``; keys take precedence
    over ``layer_decay``, and every other variable keeps multiplier 1. A key
    is a layer name, a block name (``"block5"``), a compiled regular
    expression over layer names or a layer. Frozen layers stay frozen. The
    optimizer is saved with the model. The pretrained-bases guide explains
    how it works and which optimizers it refuses.

    Args:
        optimizer: The optimizer to wrap: an instance
            (``keras.optimizers.Adam(1e-4)``) or a name (``"adam"``).
        model: The model to train (built: its weights must exist). Needed
            with ``layer_decay``, ``multipliers`` or ``learning_rates``;
            without them every multiplier is 1, which is what
            `GradualUnfreezing` needs.
        layer_decay: A number in (0, 1], e.g. ``0.7``.
        base: The `PretrainedBase` that ``layer_decay`` runs over; default:
            the only one in the model.
        multipliers: ``{key: multiplier}``, multipliers >= 0 (0: the group
            does not move, as if frozen).
        learning_rates: ``{key: learning rate}``.
        name: The optimizer's name.
        groups: Used by ``from_config``: ``[[group, multiplier, [variable
            paths]], ...]``.

    Raises:
        ValueError: For a key that matches nothing or a layer already
            matched by another key, a refused optimizer (Ftrl, Adafactor,
            ScheduleFreeAdamW, ``MultiOptimizer``, ``use_ema=True``), or
            groups given without ``model``.
        TypeError: For an ``optimizer`` that is not a Keras optimizer, or
            is already a `DiscriminativeOptimizer`.

    Example:

    ```python
    base = PretrainedBase("vgg16", input_shape=(32, 32, 3), weights=None)
    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, add_classifier_head(base(inputs)))
    base.freeze_until("block4")
    optimizer = DiscriminativeOptimizer(
        keras.optimizers.Adam(1e-4), model, layer_decay=0.5,
        multipliers={"head_output": 2.0})
    print(optimizer.describe())
    model.compile(optimizer, "binary_crossentropy")
    ```
    """

    def __init__(
        self,
        optimizer: str | keras.optimizers.Optimizer,
        model: keras.Model | None = None,
        *,
        layer_decay: float | None = None,
        base: PretrainedBase | None = None,
        multipliers: Mapping | None = None,
        learning_rates: Mapping | None = None,
        name: str | None = None,
        groups: Sequence[tuple[str, float, Sequence[str]]] | None = None,
    ) -> None:
        optimizer = _check_optimizer(optimizer)
        if groups is None and model is not None:
            groups = _resolve_groups(
                check_model(model), optimizer, layer_decay, base, multipliers, learning_rates
            )
        elif groups is None:
            given = [key for key, value in (
                ("layer_decay", layer_decay), ("base", base), ("multipliers", multipliers),
                ("learning_rates", learning_rates)) if value is not None]
            if given:
                raise ValueError(
                    f"DiscriminativeOptimizer needs the model to resolve {given}: pass "
                    "it as the second argument, DiscriminativeOptimizer(optimizer, "
                    "model, ...)."
                )
        else:
            groups = [(str(g), float(m), tuple(str(p) for p in paths)) for g, m, paths in groups]
        super().__init__(learning_rate=0.0, name=name)
        self.inner_optimizer = optimizer
        self._groups = groups
        self._multiplier_by_path = _multipliers_by_path(groups)
        self._paused_paths: set[str] = set()

    # ------------------------------------------------------------ building

    def build(self, variables: Iterable[keras.Variable]) -> None:
        variables = list(variables)
        self._trained = _TrainedVariables(variables)
        self._configured = np.array([self._configured_multiplier(v) for v in variables],
                                    dtype="float32")
        current = self._configured.copy()
        current[[v.path in self._paused_paths for v in variables]] = 0.0
        self.inner_optimizer.build(variables)
        # An initializer, not an assignment: on TensorFlow the optimizer may be
        # built while the train function is traced, where an assignment would
        # become part of every step.
        self._multipliers = self.add_variable(
            shape=(len(variables),), initializer=keras.initializers.Constant(current),
            dtype="float32", name="multipliers",
        )
        super().build(variables)

    def _configured_multiplier(self, variable) -> float:
        if self._multiplier_by_path is None:
            return 1.0
        try:
            return self._multiplier_by_path[variable.path]
        except KeyError:
            raise ValueError(
                f"{self.name!r} was made for another model: it does not know the "
                f"variable {variable.path!r}. Make the optimizer again with the model "
                "you train: DiscriminativeOptimizer(optimizer, model, ...)."
            ) from None

    @property
    def variables(self) -> list[keras.Variable]:
        return super().variables + self.inner_optimizer.variables

    # -------------------------------------------------------------- stepping

    def apply(
        self,
        grads: Sequence[Tensor],
        trainable_variables: Iterable[keras.Variable] | None = None,
    ) -> None:
        if trainable_variables is None:
            if not self.built:
                raise ValueError(
                    "Pass the variables with the first gradients (or call "
                    "optimizer.build(variables) first)."
                )
            trainable_variables = self._trained.variables
        trainable_variables = list(trainable_variables)
        if not self.built:
            self.build(trainable_variables)
        before = [keras.ops.copy(keras.ops.stop_gradient(v.value)) for v in trainable_variables]
        self.inner_optimizer.apply(grads, trainable_variables)
        multipliers = keras.ops.convert_to_tensor(self._multipliers)
        for variable, old in zip(trainable_variables, before):
            if getattr(variable, "overwrite_with_gradient", False):
                continue
            multiplier = keras.ops.cast(
                multipliers[self._trained.index(variable)], variable.dtype
            )
            new = variable.value
            scaled = old + multiplier * (new - old)
            # Exact at 1 (the wrapped step) and 0 (no step), whatever the rounding.
            scaled = keras.ops.where(multiplier == 1, new, scaled)
            variable.assign(keras.ops.where(multiplier == 0, old, scaled))
            if variable.constraint is not None:
                variable.assign(variable.constraint(variable))

    # -------------------------------------------- delegated to the wrapped one

    @property
    def learning_rate(self) -> Tensor:
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate: Any) -> None:
        self.inner_optimizer.learning_rate = learning_rate

    @property
    def iterations(self) -> keras.Variable:
        return self.inner_optimizer.iterations

    def scale_loss(self, loss: Tensor) -> Tensor:
        return self.inner_optimizer.scale_loss(loss)

    def finalize_variable_values(self, var_list: Sequence[keras.Variable]) -> None:
        self.inner_optimizer.finalize_variable_values(var_list)

    # ------------------------------------------------------ multipliers

    def multiplier(self, variable: keras.Variable) -> float:
        """The multiplier configured for ``variable`` (a Keras variable of the model)."""
        return self._configured_multiplier(variable)

    def pause_updates(self, variables: Iterable[keras.Variable]) -> None:
        """Holds ``variables`` still (multiplier 0) until `resume_updates`.

        They stay trainable for Keras (no new compile): their gradients are
        computed and the wrapped optimizer's state follows them, but their
        values do not change. Takes effect at the next step (on JAX, at the
        next epoch when called during one: `GradualUnfreezing` calls it at
        the start of epochs).
        """
        self._set_paused(variables, paused=True)

    def resume_updates(self, variables: Iterable[keras.Variable] | None = None) -> None:
        """Gives ``variables`` (default: all) their configured multipliers again."""
        if variables is None:
            variables = self._trained.variables if self.built else []
            self._paused_paths.clear()
        self._set_paused(variables, paused=False)

    def _set_paused(self, variables, paused: bool) -> None:
        variables = list(variables)
        for variable in variables:
            self._configured_multiplier(variable)  # refuses unknown variables
            (self._paused_paths.add if paused else self._paused_paths.discard)(variable.path)
        if not self.built:
            return
        current = keras.ops.convert_to_numpy(self._multipliers).copy()
        for variable in variables:
            index = self._trainable_index(variable)
            if index is not None:
                current[index] = 0.0 if paused else self._configured[index]
        self._multipliers.assign(current)

    def _trainable_index(self, variable):
        try:
            return self._trained.index(variable)
        except KeyError:
            return None  # not trained by this optimizer (a frozen layer)

    def describe(self) -> str:
        """A table of the groups: their weights, multipliers and learning rates."""
        rate = _constant_learning_rate(self.inner_optimizer)
        header = ("group", "weights", "multiplier", "learning rate")
        if self._groups is None:
            rows = [("all layers", "all", "1", _format_rate(rate, 1.0))]
        else:
            rows = [
                (group, str(len(paths)), f"{m:.4g}", _format_rate(rate, m))
                for group, m, paths in self._groups
            ]
        widths = [max(len(r[i]) for r in (header, *rows)) for i in range(4)]
        lines = [f"{type(self.inner_optimizer).__name__} with learning rates per group"]
        for row in (header, *rows):
            lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        return "\n".join(lines)

    def load_own_variables(self, store: Mapping[str, Any]) -> None:
        super().load_own_variables(store)
        # A model saved during GradualUnfreezing saved the blocks it held still
        # at that moment; a loaded optimizer gives every block its multiplier.
        if self.built:
            self._paused_paths.clear()
            self._multipliers.assign(self._configured)

    # ---------------------------------------------------------------- config

    def get_config(self) -> dict[str, Any]:
        groups = None
        if self._groups is not None:
            groups = [[group, m, list(paths)] for group, m, paths in self._groups]
        return {
            "name": self.name,
            "optimizer": keras.saving.serialize_keras_object(self.inner_optimizer),
            "groups": groups,
        }

    @classmethod
    def from_config(
        cls, config: dict[str, Any], custom_objects: dict[str, Any] | None = None
    ) -> DiscriminativeOptimizer:
        config = dict(config)
        optimizer = keras.saving.deserialize_keras_object(
            config.pop("optimizer"), custom_objects=custom_objects
        )
        return cls(optimizer, **config)


# ------------------------------------------------------------------ checks


def _check_optimizer(optimizer):
    if isinstance(optimizer, str):
        optimizer = keras.optimizers.get(optimizer)
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        raise TypeError(
            "`optimizer` must be a Keras optimizer (e.g. keras.optimizers.Adam(1e-4)) "
            f"or its name. {args.received('optimizer', optimizer)}"
        )
    if isinstance(optimizer, DiscriminativeOptimizer):
        raise TypeError(
            "`optimizer` is already a DiscriminativeOptimizer; wrap the plain "
            "optimizer once, with all the groups."
        )
    for kind, reason in _NOT_PROPORTIONAL.items():
        refused = getattr(keras.optimizers, kind, None)
        if refused is not None and isinstance(optimizer, refused):
            raise ValueError(
                f"DiscriminativeOptimizer cannot wrap {kind}: {reason}, so scaling its "
                "steps would not be the same as a lower learning rate. Use SGD, "
                "RMSprop, Adam, AdamW, Lion..."
            )
    if getattr(optimizer, "use_ema", False):
        raise ValueError(
            "DiscriminativeOptimizer does not support use_ema=True: the moving "
            "averages would follow the wrapped optimizer's unscaled steps. Use an "
            "optimizer without use_ema."
        )
    return optimizer


def _constant_learning_rate(optimizer) -> float | None:
    """The optimizer's learning rate if it is a constant, None for a schedule."""
    rate = optimizer.get_config().get("learning_rate")
    return float(rate) if args.is_number(rate) else None


def _format_rate(rate, multiplier: float) -> str:
    if rate is None:
        return f"{multiplier:.4g} x schedule"
    return f"{rate * multiplier:.3g}"


# -------------------------------------------------------------- resolution


def _resolve_groups(model, optimizer, layer_decay, base, multipliers, learning_rates):
    """``[(group, multiplier, variable paths)]`` covering every weight of ``model``."""
    if not model.weights:
        raise ValueError(
            f"Model {model.name!r} has no weights yet: build it (call it on a batch, "
            "or give it an Input) before making its optimizer."
        )
    # Only floating-point weights can ever train (not a random layer's seed state).
    weights = [v for v in model.weights if keras.backend.is_float_dtype(v.dtype)]
    layers = list(nested_layers(model))
    claimed: dict[int, str] = {}  # id(variable) -> the group that has it
    explicit = []
    for option, mapping in (("multipliers", multipliers), ("learning_rates", learning_rates)):
        for key, value in _check_mapping(option, mapping).items():
            multiplier = _multiplier(option, key, value, optimizer)
            label = _label(key)
            where = f"{option}[{label!r}]"
            variables = unique_variables(
                v for layer in _match(key, model, layers, option) for v in layer.weights
                if keras.backend.is_float_dtype(v.dtype)
            )
            if not variables:
                raise ValueError(
                    f"{where} matches only layers without weights to train. "
                    f"{args.received(option, mapping)}"
                )
            for variable in variables:
                if id(variable) in claimed:
                    raise ValueError(
                        f"The weight {variable.path!r} is matched by two groups, "
                        f"{claimed[id(variable)]} and {where}: give each layer one "
                        "multiplier."
                    )
                claimed[id(variable)] = where
            explicit.append((label, multiplier, variables))
    decayed = []
    if layer_decay is not None:
        decay = args.check_number("layer_decay", layer_decay, 0.0, 1.0, include_minimum=False)
        base = _decay_base(model, layers, base)
        blocks = block_groups(base)
        for depth, (block, block_layers) in enumerate(reversed(blocks)):
            variables = unique_variables(
                v for layer in block_layers for v in layer.weights
                if id(v) not in claimed and keras.backend.is_float_dtype(v.dtype)
            )
            for variable in variables:
                claimed[id(variable)] = block
            if variables:
                decayed.append((block, decay**depth, variables))
    elif base is not None:
        raise ValueError("`base` is only used with layer_decay=.")
    rest = unique_variables(v for v in weights if id(v) not in claimed)
    groups = explicit + decayed + ([(OTHER_LAYERS, 1.0, rest)] if rest else [])
    # In model order: the first blocks first, the head last.
    position = {id(v): i for i, v in enumerate(weights)}
    groups.sort(key=lambda g: min(position.get(id(v), len(position)) for v in g[2]))
    return [(label, float(m), tuple(v.path for v in variables)) for label, m, variables in groups]


def _multipliers_by_path(groups):
    if groups is None:
        return None
    by_path: dict[str, float] = {}
    owner: dict[str, str] = {}
    for group, multiplier, paths in groups:
        for path in paths:
            if path in by_path and by_path[path] != multiplier:
                raise ValueError(
                    f"Two weights share the path {path!r} (groups {owner[path]!r} and "
                    f"{group!r}) but would get different multipliers; the optimizer "
                    "tells weights apart by path. Give the layers distinct names."
                )
            by_path[path] = multiplier
            owner[path] = group
    return by_path


def _check_mapping(option, mapping) -> dict:
    if mapping is None:
        return {}
    if not isinstance(mapping, Mapping):
        raise TypeError(
            f"`{option}` must be a dict {{layer or block name, re.compile(pattern) or "
            f"layer: value}}. {args.received(option, mapping)}"
        )
    if not mapping:
        raise ValueError(f"`{option}` is empty. {args.received(option, mapping)}")
    return dict(mapping)


def _multiplier(option, key, value, optimizer) -> float:
    label = f"{option}[{_label(key)!r}]"
    if option == "multipliers":
        return args.check_number(label, value, minimum=0.0, example="0.1")
    rate = args.check_number(label, value, minimum=0.0, example="1e-5")
    base_rate = _constant_learning_rate(optimizer)
    if base_rate is None:
        raise ValueError(
            f"learning_rates= needs a constant learning rate on the wrapped "
            f"optimizer, and {type(optimizer).__name__} has a schedule; give "
            "multipliers= instead (they scale the schedule)."
        )
    if base_rate <= 0:
        raise ValueError(
            f"learning_rates= divides by the wrapped optimizer's learning rate, "
            f"which is {base_rate}; give it a positive one."
        )
    return rate / base_rate


def _label(key) -> str:
    if isinstance(key, re.Pattern):
        return f"re:{key.pattern}"
    if isinstance(key, keras.layers.Layer):
        return key.name
    return key


def _match(key, model, layers, option) -> list:
    """The layers a group key names (see `DiscriminativeOptimizer`)."""
    if isinstance(key, keras.layers.Layer):
        if key is model or any(layer is key for layer in layers):
            return [key]
        raise ValueError(f"{option}: layer {key.name!r} is not a layer of {model.name!r}.")
    if isinstance(key, re.Pattern):
        found = [layer for layer in layers if key.fullmatch(layer.name)]
        if not found:
            raise ValueError(
                f"{option}: no layer name of {model.name!r} matches the pattern "
                f"{key.pattern!r} (matched whole, with re.fullmatch)."
            )
        return found
    if not isinstance(key, str):
        raise TypeError(
            f"{option}: a key must be a layer name, a block name, a compiled regular "
            f"expression or a layer. Received a key {key!r} of type {type(key).__name__}."
        )
    found = [layer for layer in layers if layer.name == key]
    if found:
        return found
    bases = [layer for layer in [model, *layers] if isinstance(layer, PretrainedBase)]
    for base in bases:
        span = base.blocks.get(key)
        if span is not None:
            found += base.layers[span[0] : span[1] + 1]
    if found:
        return found
    names = [layer.name for layer in layers] + [b for base in bases for b in base.blocks]
    raise ValueError(
        f"{option}: {model.name!r} has no layer or block named {key!r}."
        f"{args.did_you_mean(key, names)}"
        + (f" Blocks: {[b for base in bases for b in base.blocks]}." if bases else "")
    )


def _decay_base(model, layers, base) -> PretrainedBase:
    if base is not None:
        if not isinstance(base, PretrainedBase):
            raise TypeError(f"`base` must be a PretrainedBase. {args.received('base', base)}")
        if not contains_layer(model, base):
            raise ValueError(f"`base` {base.name!r} is not part of the model {model.name!r}.")
        return base
    bases = [layer for layer in [model, *layers] if isinstance(layer, PretrainedBase)]
    if len(bases) != 1:
        found = "no PretrainedBase" if not bases else f"{len(bases)} PretrainedBases"
        raise ValueError(
            f"layer_decay runs over the blocks of a PretrainedBase, and {model.name!r} "
            f"has {found}: pass base=... (or name the groups with multipliers=)."
        )
    return bases[0]
