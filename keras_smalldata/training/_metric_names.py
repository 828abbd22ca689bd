"""Log keys: smoothed keys and lists of metric names given by the user."""

from __future__ import annotations

from collections.abc import Iterable

from keras_smalldata import _arguments as args

SMOOTHED_SUFFIX = "_smoothed"


def smoothed_key(key: str) -> str:
    """The log key `CurveSmoothing` writes for `key` (`val_loss` -> `val_loss_smoothed`)."""
    return f"{key}{SMOOTHED_SUFFIX}"


def is_smoothed_key(key: str) -> bool:
    """Whether `key` is a key written by `CurveSmoothing`."""
    return key.endswith(SMOOTHED_SUFFIX)


def raw_key(key: str) -> str:
    """The key a smoothed key is computed from (`val_loss_smoothed` -> `val_loss`)."""
    return key.removesuffix(SMOOTHED_SUFFIX)


def metric_names(metrics, name: str = "metrics") -> tuple[str, ...] | None:
    """``None``, a metric name or a list of names, as a tuple without repeats.

    Raises:
        TypeError: For something that is not a name or a list of names.
        ValueError: For an empty list.
    """
    if metrics is None:
        return None
    names = [metrics] if isinstance(metrics, str) else metrics
    if not isinstance(names, Iterable) or isinstance(names, (bytes, dict)):
        raise TypeError(
            f"`{name}` must be None, a metric name or a list of metric names, for "
            f"example ['val_loss']. {args.received(name, metrics)}"
        )
    names = list(names)
    if not all(isinstance(n, str) and n for n in names):
        raise TypeError(
            f"`{name}` must hold metric names (non-empty strings) such as 'loss' or "
            f"'val_accuracy'. {args.received(name, metrics)}"
        )
    if not names:
        raise ValueError(
            f"`{name}` is empty: use None for every metric. {args.received(name, metrics)}"
        )
    return tuple(dict.fromkeys(names))
