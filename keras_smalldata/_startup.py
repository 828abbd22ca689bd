"""Starting Keras and TensorFlow: quietly, and with the library's layers known to Keras.

TensorFlow 2.21 writes a wall of C++ log lines to the process's standard error
when it is imported and when it first looks for devices::

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:1796038952.900144   19266 port.cc:153] oneDNN custom operations are on...
    I0000 00:00:1796038952.902734   19266 cudart_stub.cc:31] Could not find cuda drivers...
    E0000 00:00:1796038965.582927   19266 cuda_platform.cc:52] failed call to cuInit...

They are written before TensorFlow's logging is set up, so
``TF_CPP_MIN_LOG_LEVEL`` does not stop them. `import_keras_quietly` sends the
C++ standard error (file descriptor 2) to a temporary file while TensorFlow
starts; the known start-up notices are then dropped and everything else (a
real error, a Python warning) is written back to standard error, in order.

Nothing here runs unless asked: ``import keras_smalldata`` changes no
process-wide state (no redirect, no environment variable, no log filter).
The one thing it does is register the library's Keras serializables once
Keras is imported (see below), so that ``.keras`` files load. The quiet
start is opt-in (`import_keras_quietly`); when the library needs TensorFlow
itself (for ``tf.data``), it imports it plainly.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile
from types import ModuleType

# Lines that TensorFlow prints on every start on a machine without a GPU.
_STARTUP_NOTICE = re.compile(
    r"^(?:"
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written"
    r" to STDERR"
    r"|I\d{4} [\d:.]+ +\d+ \S+:\d+\] .*"  # absl INFO lines
    r"|To enable the following instructions: .*"  # the CPU feature notice, 2nd line
    r"|[WE]\d{4} [\d:.]+ +\d+ \S+:\d+\] .*(?:cuda|CUDA|cuInit|TensorRT|TF-TRT).*"
    r")$"
)


def _wants_tensorflow_info_logs() -> bool:
    return os.environ.get("TF_CPP_MIN_LOG_LEVEL", "").strip() == "0"


class _CapturedStandardError:
    """Sends file descriptor 2 to a temporary file; replays what is not a notice."""

    def __enter__(self):
        sys.stderr.flush()
        self._file = tempfile.TemporaryFile(mode="w+b")
        self._saved = os.dup(2)
        os.dup2(self._file.fileno(), 2)
        return self

    def __exit__(self, *exc_info):
        try:
            sys.stderr.flush()
        finally:
            os.dup2(self._saved, 2)
            os.close(self._saved)
        self._file.seek(0)
        text = self._file.read().decode("utf-8", errors="replace")
        self._file.close()
        kept = [line for line in text.splitlines() if not _STARTUP_NOTICE.match(line)]
        if kept:
            sys.stderr.write("\n".join(kept) + "\n")
            sys.stderr.flush()
        return False


def import_tensorflow_quietly():
    """Imports TensorFlow and finds its devices without its C++ start-up lines.

    Does what ``import tensorflow`` does (and starts TensorFlow's device
    search, which prints the second half of the notices); only the known
    start-up notices are dropped, anything else TensorFlow or Python writes to
    standard error still appears. With ``TF_CPP_MIN_LOG_LEVEL=0`` nothing is
    dropped; unset, it is set to 2 (TensorFlow's C++ warnings and errors
    only). A TensorFlow that is already imported is returned as it is. Called
    by `import_keras_quietly` only: the user opts in.

    Returns:
        The ``tensorflow`` module.
    """
    if "tensorflow" in sys.modules or _wants_tensorflow_info_logs():
        import tensorflow

        return tensorflow
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _CapturedStandardError():
        import tensorflow

        tensorflow.config.list_physical_devices()
    return tensorflow


def import_keras_quietly() -> ModuleType:
    """``import keras``, without TensorFlow's C++ start-up log lines.

    TensorFlow 2.21 prints a dozen C++ log lines when it starts (oneDNN, CUDA
    drivers not found, CPU instructions...), even with
    ``TF_CPP_MIN_LOG_LEVEL=2``. Call this instead of ``import keras`` at the top
    of a script or notebook: TensorFlow, when it is installed (it is the
    default backend, and `tf.data` feeds every backend), is started first with
    those known notices dropped, and ``TF_CPP_MIN_LOG_LEVEL`` is set to 2 if
    it is unset; every other message still appears. Set
    ``TF_CPP_MIN_LOG_LEVEL=0`` to see everything. Without this call the
    library leaves TensorFlow's logging as TensorFlow sets it.

    Returns:
        The ``keras`` module.

    Example:

    ```python
    import keras_smalldata as ks

    keras = ks.import_keras_quietly()
    ```
    """
    try:
        import_tensorflow_quietly()
    except ImportError:  # a JAX or PyTorch install without TensorFlow
        pass
    import keras

    register_serializables()
    return keras


# ---------------------------------------------------------------------------
# The library's Keras serializables, known to Keras as soon as Keras is loaded.
#
# ``import keras_smalldata`` imports no sub-package (it stays fast and does not
# start TensorFlow), so the classes registered with
# ``keras.saving.register_keras_serializable`` are unknown to Keras until their
# module is imported: ``keras.models.load_model("model.keras")`` then fails
# with "Could not locate class 'PretrainedBase'". Here their modules are
# imported as soon as Keras is: at once when Keras is already loaded when
# keras_smalldata is imported, otherwise right after ``import keras`` finishes
# (a one-time hook on Python's import system, `sys.meta_path`, which removes
# itself). Keras itself is never imported by this.

# Every module with a `register_keras_serializable` class (a test checks the list).
SERIALIZABLE_MODULES = (
    "keras_smalldata.augment.affine",
    "keras_smalldata.augment.color",
    "keras_smalldata.augment.image_data_generator",
    "keras_smalldata.pretrained.base",
    "keras_smalldata.pretrained.learning_rates",
    "keras_smalldata.pretrained.preprocessing",
    "keras_smalldata.training.one_cycle",
)


def register_serializables() -> None:
    """Imports the modules of the library's Keras serializables, which registers them.

    A module that cannot be imported now (one being imported already, in a
    circular import) is left out: its own import registers it.
    """
    for name in SERIALIZABLE_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            pass


class _AfterImport(importlib.abc.Loader):
    """The loader of a module, followed by a callback once the module has run."""

    def __init__(self, loader, callback):
        self._loader = loader
        self._callback = callback

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        # The module sees its own loader, as without the hook.
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        try:
            self._callback()
        except Exception:  # never break the user's `import keras`
            pass


class _WhenKerasIsImported(importlib.abc.MetaPathFinder):
    """Runs `register_serializables` right after the first ``import keras``; one time."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "keras":
            return None
        _remove_keras_hook()
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _AfterImport(spec.loader, register_serializables)
        return spec


def _remove_keras_hook() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _WhenKerasIsImported)]


def register_serializables_when_keras_is_loaded() -> None:
    """Makes the library's layers loadable from ``.keras`` files once Keras is imported.

    Called by ``import keras_smalldata``: registers them now when Keras is
    loaded already, or right after ``import keras`` otherwise.
    """
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "saving"):
        register_serializables()
    elif not any(isinstance(f, _WhenKerasIsImported) for f in sys.meta_path):
        sys.meta_path.insert(0, _WhenKerasIsImported())
