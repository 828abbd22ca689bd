"""A pretrained base that falls back, loudly, to random weights when offline."""

from __future__ import annotations

import warnings
from typing import Any

from keras_smalldata.pretrained.base import PretrainedBase
from keras_smalldata.pretrained.weights import WeightsDownloadError


class RandomWeightsFallbackWarning(UserWarning):
    """ImageNet weights could not be loaded; the base has random weights."""


def pretrained_base_or_random(
    architecture: str, weights: str | None = "imagenet", **kwargs: Any
) -> tuple[PretrainedBase, str | None]:
    """Builds a `PretrainedBase`, with random weights if ImageNet's cannot be loaded.

    For scripts and notebooks that must run end to end on a machine without
    network access. When Keras cannot get the ImageNet weights file (it is
    not in Keras' cache and the download fails), this emits one
    `RandomWeightsFallbackWarning` whose message is the full error in a banner
    (which file, where Keras looks for it, how to pass a local copy), and
    returns a base with random weights. Every other failure is raised as usual: a bad
    argument, a damaged cached file, a local weights file (a wrong path is
    never silently replaced).

    Args:
        architecture: As for `PretrainedBase`, e.g. "vgg16".
        weights: "imagenet", None or the path of a weights file.
        **kwargs: Passed to `PretrainedBase` (``input_shape``, ``pooling``...).

    Returns:
        ``(base, weights)``: the base and the weights it really got
        ("imagenet", the path, or None after a fallback), so that results
        can be labelled honestly.

    Example:

    ```python
    base, weights = pretrained_base_or_random("vgg16", input_shape=(64, 64, 3))
    if weights is None:
        print("random VGG16: this is not transfer learning")
    ```
    """
    try:
        return PretrainedBase(architecture, weights=weights, **kwargs), weights
    except WeightsDownloadError as error:
        message = (
            f"No ImageNet weights for {architecture!r}: using RANDOM weights instead. "
            "Results below are not transfer learning.\n" + str(error)
        )
        # One message, once: the warning itself carries the banner (printing it
        # as well showed the same text twice).
        banner = "!" * 78
        warnings.warn(
            f"\n{banner}\n{message}\n{banner}", RandomWeightsFallbackWarning, stacklevel=2
        )
        return PretrainedBase(architecture, weights=None, **kwargs), None
