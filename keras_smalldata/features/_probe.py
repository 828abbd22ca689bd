"""The probe: what code the fingerprint cannot vouch for computes on a fixed input.

Code that the fingerprint cannot read completely (a user-defined layer, a
function that reads a file or a global that changes, an object implemented
in C) is also checked by what it computes: its output on a fixed
pseudo-random input (`probe_picture`) is stored with the cache entry as a
*signature* and compared when the entry is read again. A different output
means the features would differ too, and the entry is not used. Which code
runs on the probe is decided in ``_forward.model_probes`` (each layer of the
user's alone where possible) and ``extraction.py`` (an augmentation whole).

A signature holds the output's shapes and dtypes, its norm and its
projections on a few fixed random sign vectors: any change in the output
larger than a float round-off changes them, while the entry stays small.
Two signatures match within a tolerance (1e-4 of the output's norm for
float32, more for half precision), so run-to-run round-off does not count.
"""

from __future__ import annotations

import hashlib

import keras
import ml_dtypes
import numpy as np

PROBE_SEED = 0
_SKETCH_SIZE = 8
_CHUNK = 1 << 16
_RELATIVE_TOLERANCE = 1e-4


def probe_picture(image_shape: tuple) -> np.ndarray:
    """A fixed batch of one pseudo-random picture (or tensor) of ``image_shape``.

    Half of its values (at random) are in [0, 255] and half in [-1, 1], so
    that code expecting either range sees values it is sensitive to.
    Unknown dimensions become 32.
    """
    shape = tuple(32 if d is None else int(d) for d in image_shape)
    rng = np.random.default_rng(PROBE_SEED)
    bright = rng.uniform(0.0, 255.0, shape)
    signed = rng.uniform(-1.0, 1.0, shape)
    mask = rng.random(shape) < 0.5
    return np.where(mask, signed, bright)[None].astype("float32")


def signature(outputs) -> dict:
    """A small summary of ``outputs`` (a tensor or a structure of them) that changes when any value changes."""
    arrays = [np.asarray(keras.ops.convert_to_numpy(o)) for o in keras.tree.flatten(outputs)]
    values = np.concatenate([a.astype(np.float64).reshape(-1) for a in arrays] or [np.zeros(0)])
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
        "shape": [list(a.shape) for a in arrays],
        "dtype": [a.dtype.name for a in arrays],
        "norm": float(np.linalg.norm(values)),
        "sketch": sketch.tolist(),
        "nonfinite": nonfinite,
    }


def _tolerance(dtypes: list) -> float:
    """The relative tolerance for outputs of these dtypes: 1e-4, or more for half precision."""
    tolerance = 0.0
    for name in dtypes:
        try:
            eps = float(ml_dtypes.finfo(name).eps)  # NumPy's floats and bfloat16 alike
        except (TypeError, ValueError):
            continue  # integers and booleans: exact
        tolerance = max(tolerance, _RELATIVE_TOLERANCE, 8 * eps)
    return tolerance


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
