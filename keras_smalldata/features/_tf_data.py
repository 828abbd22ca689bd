"""The TensorFlow-only pieces of feature extraction: reading a `tf.data` pipeline."""

from __future__ import annotations

import hashlib

import numpy as np

from keras_smalldata._backend import tensorflow

# Attributes that hold names, counters or bookkeeping, not what is computed.
_IGNORED_ATTRS = ("metadata",)


def _is_opaque(op: str) -> bool:
    """True for operations whose result the graph does not show (variables, Python calls)."""
    return "Variable" in op or "PyFunc" in op or op in ("VarHandleOp", "MutableHashTableV2")


def pipeline_digest(dataset, file_paths: list[str]) -> tuple[str | None, int | None]:
    """Digest of what an `image_dataset_from_directory` pipeline computes, and its batch size.

    `keras.utils.image_dataset_from_directory` does not keep its options on
    the dataset, yet some of them change the pixels (``interpolation``,
    ``crop_to_aspect_ratio``, ``pad_to_aspect_ratio``) or the labels (a
    ``labels`` list). They are all in the dataset's graph: its operations,
    their attributes and the constants of its functions. This digest keeps
    those and leaves out what does not change the samples: node and
    function names (numbered per session), integer scalars at the top level
    (seeds, buffer sizes; the batch size is returned apart) and the file
    paths (fingerprinted from the file system instead). Top-level constants
    with one value per file (the labels) are put in the order of the sorted
    file paths, so a shuffled file order gives the same digest. None when
    the graph cannot be read.
    """
    tf = tensorflow()
    try:
        serialized = tf.raw_ops.DatasetToGraphV2(
            input_dataset=tf.data.experimental.to_variant(dataset),
            external_state_policy=1,  # ignore: we only read the graph
            strip_device_assignment=True,
        )
        graph = tf.compat.v1.GraphDef.FromString(serialized.numpy())
    except Exception:  # noqa: BLE001 - any failure means "cannot tell"
        return None, None
    ops = [node.op for node in graph.node]
    ops += [node.op for function in graph.library.function for node in function.node_def]
    if any(_is_opaque(op) for op in ops):
        return None, None
    order = np.argsort(np.asarray(file_paths, dtype=object)) if file_paths else None
    string_enum = tf.string.as_datatype_enum
    items = []

    def describe(node, top: bool) -> str:
        attrs: list[tuple] = []
        for key in sorted(node.attr):
            if key.startswith("_") or key in _IGNORED_ATTRS:
                continue
            value = node.attr[key]
            kind = value.WhichOneof("value")
            if kind == "func" or (kind == "list" and len(value.list.func)):
                continue
            if node.op == "Const" and key == "value":
                if top and value.tensor.dtype == string_enum:
                    continue
                try:
                    array = tf.make_ndarray(value.tensor)
                except Exception:  # noqa: BLE001 - resource handles and the like
                    if top:
                        continue
                    attrs.append((key, value.SerializeToString(deterministic=True).hex()))
                    continue
                if array.dtype.kind in "OSU":
                    attrs.append((key, repr(array.tolist())))
                    continue
                if top and array.ndim == 0 and array.dtype.kind in "iu":
                    continue
                if top and order is not None and array.ndim >= 1 and len(array) == len(order):
                    array = array[order]
                array = np.ascontiguousarray(array)
                attrs.append(
                    (key, array.dtype.str, array.shape, hashlib.sha256(array.tobytes()).hexdigest())
                )
                continue
            attrs.append((key, value.SerializeToString(deterministic=True).hex()))
        return repr((node.op, attrs))

    constants = {node.name: node for node in graph.node if node.op == "Const"}
    batch_size = None
    for node in graph.node:
        items.append(describe(node, top=True))
        if node.op.startswith("BatchDataset") and len(node.input) > 1:
            size = constants.get(node.input[1].split(":")[0])
            if size is not None:
                batch_size = int(tf.make_ndarray(size.attr["value"].tensor))
    for function in graph.library.function:
        for node in function.node_def:
            items.append(describe(node, top=False))
    items.sort()
    return hashlib.sha256("\n".join(items).encode("utf-8")).hexdigest(), batch_size


def element_parts(dataset):
    """Splits a dataset's element spec into (image spec, label spec or None).

    Raises:
        TypeError: for dict elements or a spec that is not a tensor.
        ValueError: for tuples of more than 2 parts (sample weights).
    """
    tf = tensorflow()
    spec = dataset.element_spec
    if isinstance(spec, dict):
        raise TypeError(
            "The dataset yields dicts; extract_features needs a dataset of images "
            "or of (images, labels) tuples. Map it first, e.g. "
            "`dataset.map(lambda d: (d['image'], d['label']))`."
        )
    if isinstance(spec, (tuple, list)):
        if len(spec) == 1:
            spec = (spec[0], None)
        elif len(spec) == 2:
            spec = (spec[0], spec[1])
        else:
            raise ValueError(
                f"The dataset yields tuples of {len(spec)} parts; extract_features takes "
                "images or (images, labels). Drop the sample weights first, e.g. "
                "`dataset.map(lambda x, y, w: (x, y))`."
            )
    else:
        spec = (spec, None)
    for part in spec:
        if part is not None and not isinstance(part, tf.TensorSpec):
            raise TypeError(
                f"The dataset yields {part!r}; images and labels must be dense tensors."
            )
    return spec
