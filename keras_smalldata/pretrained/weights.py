"""Getting pretrained weights: Keras' download cache, local files, clear errors.

``weights="imagenet"`` goes through Keras' own download-and-cache path (the
`keras.applications` constructor calls ``keras.utils.get_file``), so a file
that Keras already cached is reused and its hash checked. When that fails
(no network, a firewall) we raise a `FileNotFoundError` that says which file
is missing, where Keras looks for it, and how to pass a local copy instead.

A local weights file is loaded into the freshly built conv base and checked:
a file for another architecture, another width (``alpha``) or another
``include_top`` raises a `ValueError` instead of silently leaving layers with
random weights.
"""

from __future__ import annotations

import contextlib
import os
import warnings

WEIGHTS_SUFFIXES = (".weights.h5", ".h5", ".hdf5", ".keras")

# Keras warns (instead of raising) when a .weights.h5 file lacks some layers.
_PARTIAL_LOAD_MARKERS = ("skipping", "could not be loaded", "retain their freshly")


def keras_cache_dir() -> str:
    """Returns the folder where Keras caches downloaded application weights.

    That is ``$KERAS_HOME/models`` when ``KERAS_HOME`` is set, else
    ``~/.keras/models``. When that folder is not writable Keras falls back to
    ``/tmp/.keras/models``.
    """
    try:
        from keras.src.backend.config import keras_home

        home = keras_home()
    except ImportError:  # pragma: no cover - older/newer Keras layouts
        home = os.environ.get("KERAS_HOME", os.path.join("~", ".keras"))
    base = os.path.expanduser(home)
    if not os.access(base, os.W_OK) and os.path.isdir("/tmp"):
        base = os.path.join("/tmp", ".keras")
    return os.path.join(base, "models")


class _DownloadRecorder:
    """Records the `get_file` calls a `keras.applications` constructor makes."""

    def __init__(self):
        self.calls = []  # (fname, origin, cache_dir, cache_subdir)
        self.failed = None  # (fname, origin, cache_path, exception)

    @contextlib.contextmanager
    def recording(self):
        try:
            from keras.src.utils import file_utils
        except ImportError:  # pragma: no cover
            yield self
            return
        original = file_utils.get_file
        recorder = self

        def get_file(fname=None, origin=None, *args, **kwargs):
            cache_subdir = kwargs.get("cache_subdir", "datasets")
            cache_dir = kwargs.get("cache_dir")
            name = os.fspath(fname) if fname else os.path.basename(str(origin))
            if cache_dir is None:
                folder = os.path.join(os.path.dirname(keras_cache_dir()), cache_subdir)
            else:
                folder = os.path.join(os.path.expanduser(cache_dir), cache_subdir)
            recorder.calls.append((name, origin, folder))
            try:
                return original(fname, origin, *args, **kwargs)
            except BaseException as error:
                recorder.failed = (name, origin, os.path.join(folder, name), error)
                raise

        file_utils.get_file = get_file
        try:
            yield self
        finally:
            file_utils.get_file = original


def build_with_imagenet_weights(architecture, build):
    """Runs ``build()`` (a constructor call with ``weights="imagenet"``).

    Returns what ``build`` returns. When Keras cannot get the weights file,
    raises a `FileNotFoundError` naming the file, the cache folder and the
    offline alternatives.
    """
    recorder = _DownloadRecorder()
    try:
        with recorder.recording():
            return build()
    except KeyboardInterrupt:
        raise
    except Exception as error:
        if recorder.failed is None:
            raise
        fname, origin, cache_path, cause = recorder.failed
        raise FileNotFoundError(
            f"Could not get the ImageNet weights of {architecture.name}: the file "
            f"{fname!r} is not in Keras' cache and downloading it failed "
            f"({type(cause).__name__}: {cause}).\n"
            f"Keras looks for it at {cache_path!r} (the folder is "
            "$KERAS_HOME/models when KERAS_HOME is set, else ~/.keras/models).\n"
            "To work offline, either:\n"
            f"  - download {origin} on a machine with network access and copy it "
            f"to {cache_path!r} (Keras checks its hash and reuses it), or\n"
            "  - pass the file's path: "
            f"PretrainedBase({architecture.name!r}, weights='/path/to/{fname}'), or\n"
            "  - use weights=None for random initial weights (training from scratch)."
        ) from error


def check_weights_path(weights) -> str:
    """Validates a weights file path and returns it as a string."""
    path = os.fspath(weights)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"weights={path!r}: no such file. Pass 'imagenet' (Keras downloads and "
            "caches the file), None (random weights) or the path of an existing "
            f"weights file ({', '.join(WEIGHTS_SUFFIXES)})."
        )
    if os.path.isdir(path):
        raise ValueError(
            f"weights={path!r} is a folder; pass the path of a weights file "
            f"({', '.join(WEIGHTS_SUFFIXES)})."
        )
    if not path.endswith(WEIGHTS_SUFFIXES):
        raise ValueError(
            f"weights={path!r} has an unsupported extension; Keras loads weights from "
            f"{', '.join(WEIGHTS_SUFFIXES)} files (e.g. Keras' own "
            "'vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5' or a file written by "
            "base.save_weights('base.weights.h5'))."
        )
    return path


def load_weights_file(model, path: str, description: str) -> None:
    """Loads a weights file into ``model`` and refuses partial or mismatched loads.

    Args:
        model: The freshly built conv base (a Keras model).
        path: A path accepted by `check_weights_path`.
        description: What the model is, for error messages
            (e.g. ``"VGG16 (include_top=False, input_shape=(150, 150, 3))"``).
    """
    hint = (
        f"The file must hold the weights of {description}: Keras' own "
        "'..._notop.h5' download for this architecture, or a file written by "
        "base.save_weights('...weights.h5') from a PretrainedBase of the same "
        "architecture and options (e.g. the same alpha)."
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(path)
        except (ValueError, KeyError, TypeError, IndexError) as error:
            raise ValueError(
                f"weights={path!r} does not match {description}: {_short(error)}\n{hint}"
            ) from error
    partial = [
        str(w.message)
        for w in caught
        if any(marker in str(w.message).lower() for marker in _PARTIAL_LOAD_MARKERS)
    ]
    for w in caught:
        if str(w.message) not in partial:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if partial:
        raise ValueError(
            f"weights={path!r} does not match {description}: Keras could load only "
            f"part of it ({_short(partial[0])}).\n{hint}"
        )


def _short(error, limit: int = 400) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[:limit] + "..."
