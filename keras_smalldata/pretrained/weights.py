"""Getting pretrained weights: Keras' download cache, local files, clear errors.

``weights="imagenet"`` goes through Keras' own download-and-cache path: the
`keras.applications` constructor is called with ``weights="imagenet"`` and
calls ``keras.utils.get_file``, so a file that Keras already cached is reused
and its hash checked. When Keras cannot get the file (no network, a firewall)
we raise a `WeightsDownloadError` (a `FileNotFoundError`) built from the
registry row's weights-file facts: which file, where Keras looks for it, and
how to pass a local copy instead.

A local weights file is checked before Keras reads it (an empty file, a zip
archive where an HDF5 file is expected and the reverse are named as such) and
after it is loaded into the freshly built conv base: a file for another
architecture, another width (``alpha``) or a cut base raises a `ValueError`
instead of silently leaving layers with random weights.
"""

from __future__ import annotations

import inspect
import os
import tempfile
import warnings
import zipfile

WEIGHTS_SUFFIXES = (".weights.h5", ".h5", ".hdf5", ".keras")

# The first bytes of an HDF5 file (its superblock may also start at 512, 1024,
# 2048... bytes when the file has a user block) and of a zip archive (.keras).
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_ZIP_SIGNATURE = b"PK\x03\x04"

# Keras warns (instead of raising) when a .weights.h5 file lacks some layers.
_PARTIAL_LOAD_MARKERS = ("skipping", "could not be loaded", "retain their freshly")


class WeightsDownloadError(FileNotFoundError):
    """Keras could not get an ImageNet weights file: not cached, download failed."""


def keras_cache_dir() -> str:
    """Returns the folder where Keras caches downloaded application weights.

    Keras' documented rule (``keras.utils.get_file``): ``$KERAS_HOME/models``
    when the ``KERAS_HOME`` environment variable is set, else
    ``~/.keras/models``; when that folder's parent is not writable, Keras
    uses ``/tmp/.keras/models``. Keras reads ``KERAS_HOME`` once, when it is
    imported: set it before importing Keras.

    Returns:
        The folder, as a string.

    Example:

    ```python
    print(keras_cache_dir())  # e.g. /home/me/.keras/models
    ```
    """
    if "KERAS_HOME" in os.environ:
        home = os.path.expanduser(os.environ["KERAS_HOME"])
    else:
        home = os.path.join(os.path.expanduser("~"), ".keras")
    if not os.access(home, os.W_OK):
        tmp = "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()
        home = os.path.join(tmp, ".keras")
    return os.path.join(home, "models")


def build_with_imagenet_weights(architecture, build, options: dict, input_shape):
    """Returns ``build("imagenet")``: the constructor with Keras' ImageNet weights.

    Args:
        architecture: The registry row (`Architecture`).
        build: ``build(weights)`` calls the `keras.applications` constructor.
        options: The extra constructor options (``{"alpha": 0.35}``).
        input_shape: The input shape the base is built with.

    Raises:
        WeightsDownloadError: When Keras could not get the weights file,
            naming the file, the cache folder and the offline alternatives.
            Any other failure is raised as it is.
    """
    try:
        return build("imagenet")
    except Exception as error:
        known_file = _default_weights_file(architecture, options, input_shape)
        if not _could_not_get_file(architecture, error, known_file):
            raise
        raise WeightsDownloadError(
            _unavailable_message(architecture, error, known_file)
        ) from error


def _default_weights_file(architecture, options: dict, input_shape) -> bool:
    """True when Keras asks for the row's ``weights_file`` with these options."""
    for option in architecture.weights_vary_with:
        if option == "input_shape":
            sides = {side for side in input_shape[:2] if side is not None}
            if sides - {architecture.default_size}:
                return False
        elif option in options:
            default = inspect.signature(architecture.constructor).parameters[option].default
            if options[option] != default:
                return False
    return True


def _could_not_get_file(architecture, error, known_file: bool) -> bool:
    """True when ``error`` means that Keras could not get the weights file.

    ``keras.utils.get_file`` reports a failed download as a bare ``Exception``
    ("URL fetch failure on <url>") or lets an `OSError` through (a socket or
    disk error); Keras refuses bad options with other types (`ValueError`...)
    before it asks for a file. When the file's name is known, it must also be
    missing from Keras' cache: Keras deletes a partial download, so a failure
    with the file present is something else (a damaged file, for instance).
    """
    if type(error) is not Exception and not isinstance(error, OSError):
        return False
    if known_file:
        path = os.path.join(keras_cache_dir(), architecture.weights_file)
        return not os.path.exists(path)
    return True


def _unavailable_message(architecture, error, default_file: bool) -> str:
    name, file = architecture.name, architecture.weights_file
    cache_path = os.path.join(keras_cache_dir(), file)
    algorithm = {32: "MD5", 64: "SHA-256"}.get(len(architecture.weights_hash or ""))
    check = (
        f"Keras checks its {algorithm} hash {architecture.weights_hash} and reuses it"
        if algorithm
        else "Keras reuses it"
    )
    lines = [
        f"Could not get the ImageNet weights of {name}: the file {file!r} is not in "
        f"Keras' cache and downloading it failed ({type(error).__name__}: "
        f"{_short(error)}).",
        f"Keras looks for it at {cache_path!r} (the folder is $KERAS_HOME/models when "
        "KERAS_HOME is set, else ~/.keras/models).",
    ]
    if not default_file:
        options = " and ".join(architecture.weights_vary_with)
        lines.append(
            f"Keras chooses {name}'s file from {options}: {file!r} is the file for the "
            "default options; with yours Keras asks for another file of the same "
            "folder, named at the end of the URL in Keras' message above."
        )
    lines += [
        "To work offline, either:",
        f"  - download {architecture.weights_url} on a machine with network access and "
        f"copy it to {cache_path!r} ({check}), or",
        f"  - pass the file's path: PretrainedBase({name!r}, weights='/path/to/{file}'), or",
        "  - use weights=None for random initial weights (training from scratch).",
    ]
    return "\n".join(lines)


def check_weights_path(weights) -> str:
    """Validates a weights file path and its first bytes; returns the path as a string."""
    path = os.fspath(weights)
    accepted = ", ".join(WEIGHTS_SUFFIXES)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"weights={path!r}: no such file. Pass 'imagenet' (Keras downloads and "
            "caches the file), None (random weights) or the path of an existing "
            f"weights file ({accepted})."
        )
    if os.path.isdir(path):
        raise ValueError(
            f"weights={path!r} is a folder; pass the path of a weights file ({accepted})."
        )
    if not path.endswith(WEIGHTS_SUFFIXES):
        raise ValueError(
            f"weights={path!r} has an unsupported extension; Keras loads weights from "
            f"{accepted} files (e.g. Keras' own "
            "'vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5' or a file written by "
            "base.save_weights('base.weights.h5'))."
        )
    _check_first_bytes(path)
    return path


def _check_first_bytes(path: str) -> None:
    size = os.path.getsize(path)
    expected = (
        "a .keras archive (a zip file written by model.save('x.keras'))"
        if path.endswith(".keras")
        else "an HDF5 weights file (Keras' own '..._notop.h5' download, or a file "
        "written by base.save_weights('x.weights.h5'))"
    )
    if size == 0:
        raise ValueError(
            f"weights={path!r} is an empty file (0 bytes); expected {expected}. An "
            "interrupted download or copy leaves such files: fetch or copy it again."
        )
    with open(path, "rb") as file:
        head = file.read(8)
        hdf5 = head == _HDF5_SIGNATURE
        offset = 512
        while not hdf5 and offset + 8 <= size:
            file.seek(offset)
            hdf5 = file.read(8) == _HDF5_SIGNATURE
            offset *= 2
    zipped = head[:4] == _ZIP_SIGNATURE
    if path.endswith(".keras") and not zipped:
        found = "an HDF5 file: rename it to end in .weights.h5" if hdf5 else "not a zip archive"
        raise ValueError(f"weights={path!r} is {found}; expected {expected}.")
    if not path.endswith(".keras") and not hdf5:
        found = (
            "a zip archive, such as a whole model saved with model.save('x.keras'): "
            "give it the .keras extension, or save the base's weights with "
            "base.save_weights('x.weights.h5')"
            if zipped
            else f"not an HDF5 file (it starts with {head!r})"
        )
        raise ValueError(f"weights={path!r} is {found}; expected {expected}.")


def load_weights_file(model, path: str, description: str) -> None:
    """Loads a weights file into ``model`` and refuses damaged, partial or mismatched loads.

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
    if path.endswith(".keras"):
        hint += (
            " A .keras file of a whole model (base and head) does not fit: take the "
            "base's weights out of it with keras.models.load_model(path)"
            ".get_layer(<base name>).save_weights('base.weights.h5')."
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(path)
        except (OSError, EOFError, zipfile.BadZipFile) as error:
            raise ValueError(
                f"weights={path!r} could not be read: the file is damaged or truncated "
                f"({type(error).__name__}: {_short(error)}). Fetch or copy it again.\n{hint}"
            ) from error
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
