"""The probe: a model's or an augmentation's output on one fixed picture.

Code that the fingerprint cannot read completely (a user-defined layer, a
function that reads a file or a global that changes, an object implemented
in C) is also checked by what it computes: its output on a fixed
pseudo-random picture is stored with the cache entry as a *signature* and
compared when the entry is read again. A different output means the
features would differ too, and the entry is not used.

A signature holds the output's shape and dtype, its norm and its
projections on a few fixed random sign vectors: any change in the output
larger than a float round-off changes them, while the entry stays small.
Two signatures match within a tolerance (1e-4 of the output's norm for
float32), so run-to-run round-off differences do not count.
"""

from __future__ import annotations

import hashlib

import keras
import numpy as np

PROBE_SEED = 0
_SKETCH_SIZE = 8
_CHUNK = 1 << 16
_RELATIVE_TOLERANCE = 1e-4


def probe_picture(image_shape: tuple) -> np.ndarray:
    """A fixed batch of one pseudo-random picture of ``image_shape``.

    Half of its pixels (at random) are in [0, 255] and half in [-1, 1], so
    that a model expecting either range sees values it is sensitive to.
    Unknown dimensions become 32.
    """
    shape = tuple(32 if d is None else int(d) for d in image_shape)
    rng = np.random.default_rng(PROBE_SEED)
    bright = rng.uniform(0.0, 255.0, shape)
    signed = rng.uniform(-1.0, 1.0, shape)
    mask = rng.random(shape[:-1] + (1,)) < 0.5
    return np.where(mask, signed, bright)[None].astype("float32")


def signature(outputs) -> dict:
    """A small summary of ``outputs`` that changes when any value changes."""
    array = np.asarray(keras.ops.convert_to_numpy(outputs))
    values = array.astype(np.float64).reshape(-1)
    finite = np.isfinite(values)
    nonfinite = None
    if not finite.all():
        positions = np.flatnonzero(~finite)
        kinds = np.sign(np.nan_to_num(values[positions], nan=0.0, posinf=1.0, neginf=-1.0))
        nonfinite = hashlib.sha256(positions.tobytes() + kinds.tobytes()).hexdigest()
        values = np.where(finite, values, 0.0)
    sketch = np.zeros(_SKETCH_SIZE)
    for start in range(0, len(values), _CHUNK):
        chunk = values[start : start + _CHUNK]
        rng = np.random.default_rng([PROBE_SEED, start])
        signs = rng.integers(0, 2, (_SKETCH_SIZE, len(chunk)), dtype=np.int8) * 2 - 1
        sketch += signs @ chunk
    return {
        "shape": list(array.shape),
        "dtype": array.dtype.str,
        "norm": float(np.linalg.norm(values)),
        "sketch": sketch.tolist(),
        "nonfinite": nonfinite,
    }


def _tolerance(dtype: str) -> float:
    kind = np.dtype(dtype)
    if kind.kind != "f":
        return 0.0
    return max(_RELATIVE_TOLERANCE, 8 * float(np.finfo(kind).eps))


def signatures_match(recorded: dict, current: dict) -> bool:
    """True when two signatures describe the same output, to float round-off."""
    if any(recorded.get(k) != current.get(k) for k in ("shape", "dtype", "nonfinite")):
        return False
    allowed = _tolerance(current["dtype"]) * max(recorded["norm"], current["norm"])
    if abs(recorded["norm"] - current["norm"]) > allowed:
        return False
    differences = np.abs(np.subtract(recorded["sketch"], current["sketch"]))
    return bool(np.all(differences <= allowed))


def stable_signature(run, repeats: int) -> dict | None:
    """The signature of ``run()``'s output, or None if ``repeats`` runs disagree.

    Disagreeing runs mean the output is random in a way the seed does not
    control: it cannot tell whether the code changed.
    """
    first = signature(run())
    for _ in range(repeats - 1):
        if not signatures_match(first, signature(run())):
            return None
    return first
