"""Slow check of the architecture registry against the installed Keras (not a pytest file).

Builds every architecture of `available_architectures()` with ``weights=None``
(one at a time, at a small input size) and checks each registry fact against
the real model:

- the default and minimum input sizes the constructor passes to Keras'
  ``obtain_input_shape`` (MobileNetV3, which does its own check, is tried at
  min_size and min_size - 1);
- the output layer name, the last convolution layer (registry name versus the
  last conv layer found by type), the last-block boundary names (present and
  not auto-numbered), that every block pattern finds blocks and that blocks do
  not interleave;
- the preprocessing mode against the family's own ``preprocess_input``;
- the weights-file facts (file name, URL, hash) against the ``get_file`` call
  the constructor makes for ``include_top=False`` ImageNet weights (recorded,
  then stopped before any download).

Run it after upgrading Keras (takes several minutes and ~2 GB of memory):

    python tests/pretrained/check_registry_all.py [NAME ...]
"""

from __future__ import annotations

import gc
import os
import re
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras.src.applications import imagenet_utils  # noqa: E402
from keras.src.utils import file_utils  # noqa: E402

from keras_smalldata.pretrained import (  # noqa: E402
    ImageNetPreprocessing,
    PretrainedBase,
    available_architectures,
    get_architecture,
    is_auto_named,
)


def _recorded_sizes(spec):
    """Calls the constructor and records the sizes it gives obtain_input_shape."""
    calls = []
    original = imagenet_utils.obtain_input_shape

    def recording(input_shape, default_size, min_size, *args, **kwargs):
        calls.append((default_size, min_size))
        raise RuntimeError("recorded")

    imagenet_utils.obtain_input_shape = recording
    try:
        spec.constructor(include_top=False, weights=None)
    except RuntimeError:
        pass
    finally:
        imagenet_utils.obtain_input_shape = original
    return calls


class _Recorded(Exception):
    pass


def _recorded_weights_file(spec):
    """The (file name, URL, hash) the constructor asks get_file for, default options."""
    calls = []
    original = file_utils.get_file

    def recording(fname=None, origin=None, **kwargs):
        calls.append((fname, origin, kwargs.get("file_hash")))
        raise _Recorded

    file_utils.get_file = recording
    try:
        spec.constructor(include_top=False, weights="imagenet")
    except _Recorded:
        pass
    finally:
        file_utils.get_file = original
    return calls[0] if calls else None


def check(name: str) -> list[str]:
    spec = get_architecture(name)
    problems = []
    facts = (spec.weights_file, spec.weights_url, spec.weights_hash)
    recorded = _recorded_weights_file(spec)
    if recorded != facts:
        problems.append(f"weights file: keras asks for {recorded}, registry says {facts}")
    sizes = _recorded_sizes(spec)
    if sizes:
        default, minimum = sizes[0]
        if spec.name == "MobileNet" or spec.name == "MobileNetV2":
            default = 224  # these pass the input size itself when it is known
        if (default, minimum) != (spec.default_size, spec.min_size):
            problems.append(
                f"sizes: keras (default={default}, min={minimum}) vs registry "
                f"({spec.default_size}, {spec.min_size})"
            )
    else:
        try:
            spec.constructor(
                include_top=False, weights=None,
                input_shape=(spec.min_size - 1, spec.min_size - 1, 3),
            )
            problems.append(f"min_size: {spec.min_size - 1} accepted")
        except ValueError:
            pass

    rng = np.random.default_rng(0)
    pictures = rng.uniform(0, 255, size=(2, 8, 8, 3)).astype("float32")
    mode = spec.preprocessing
    ours = keras.ops.convert_to_numpy(ImageNetPreprocessing(mode)(pictures))
    reference = np.asarray(spec.preprocess_input(pictures.copy()))
    if not np.allclose(ours, reference, atol=1e-4):
        problems.append(f"preprocessing {mode!r} differs from {spec.module}.preprocess_input")

    size = max(spec.min_size, 32)
    base = PretrainedBase(spec.name, input_shape=(size, size, 3), weights=None)
    names = [layer.name for layer in base.layers]
    if spec.output_layer is not None and base.feature_layer_name != spec.output_layer:
        problems.append(f"output layer: {base.feature_layer_name!r} vs {spec.output_layer!r}")
    if spec.output_layer is None and not is_auto_named(base.layers[base.feature_index]):
        problems.append(f"output layer {base.feature_layer_name!r} is stable: record it")
    last_conv = None
    for layer in reversed(base.layers):
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
                              keras.layers.SeparableConv2D)) or (
            isinstance(layer, keras.layers.Dense) and len(layer.output.shape) == 4
        ):
            last_conv = layer.name
            break
    if spec.last_conv is not None and spec.last_conv != last_conv:
        problems.append(f"last conv: found {last_conv!r} vs registry {spec.last_conv!r}")
    if spec.last_conv is None and not is_auto_named(base.get_layer(last_conv)):
        problems.append(f"last conv {last_conv!r} is stable: record it")
    for boundary in (spec.last_block_start, spec.last_block_after):
        if boundary is None:
            continue
        if boundary not in names:
            problems.append(f"boundary {boundary!r} missing")
        elif is_auto_named(base.get_layer(boundary)):
            problems.append(f"boundary {boundary!r} is auto-numbered")
    blocks = base.blocks
    for pattern in spec.block_patterns:
        if not any(re.match(pattern, n) for n in names):
            problems.append(f"block pattern {pattern!r} matches nothing")
    by_level = {}
    for pattern in spec.block_patterns:
        spans = sorted(
            {m.group(1): blocks[m.group(1)] for n in names if (m := re.match(pattern, n))}.values()
        )
        by_level[pattern] = spans
        for (_, end), (start, _) in zip(spans, spans[1:]):
            if start <= end:
                problems.append(f"blocks of {pattern!r} interleave: {spans}")
                break
    if spec.landmarks and not any(re.match(spec.landmarks, n) for n in names):
        problems.append("landmarks match nothing")
    if spec.last_block_start and spec.block_patterns:
        index = names.index(spec.last_block_start) if spec.last_block_start in names else -1
        if not any(index == span[0] for span in blocks.values()):
            problems.append(f"{spec.last_block_start!r} does not start a block")
    base.unfreeze_last_block()
    summary = base.trainable_summary()
    print(
        f"{spec.name:18s} layers={len(base.layers):4d} params={base.count_params():,} "
        f"feature={base.feature_layer_name} last_conv={base.last_conv_layer_name} "
        f"blocks={len(blocks)} last-block trainable params={summary.trainable_params:,}"
    )
    return problems


def main(argv):
    names = argv or available_architectures()
    failures = {}
    for name in names:
        problems = check(name)
        if problems:
            failures[name] = problems
            for problem in problems:
                print(f"  PROBLEM {name}: {problem}")
        keras.backend.clear_session()
        gc.collect()
    print(f"checked {len(names)} architectures, {len(failures)} with problems")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
