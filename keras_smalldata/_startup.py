"""Starting Keras and TensorFlow without TensorFlow's C++ start-up log lines.

TensorFlow 2.21 writes a wall of C++ log lines to the process's standard error
when it is imported and when it first looks for devices::

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:1796038952.900144   19266 port.cc:153] oneDNN custom operations are on...
    I0000 00:00:1796038952.902734   19266 cudart_stub.cc:31] Could not find cuda drivers...
    E0000 00:00:1796038965.582927   19266 cuda_platform.cc:52] failed call to cuInit...

They are written before TensorFlow's logging is set up, so
``TF_CPP_MIN_LOG_LEVEL`` does not stop them. Here the C++ standard error
(file descriptor 2) goes to a temporary file while TensorFlow starts; the
known start-up notices are then dropped and everything else (a real error, a
Python warning) is written back to standard error, in order.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

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
    dropped. A TensorFlow that is already imported is returned as it is.

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


def import_keras_quietly():
    """``import keras``, without TensorFlow's C++ start-up log lines.

    TensorFlow 2.21 prints a dozen C++ log lines when it starts (oneDNN, CUDA
    drivers not found, CPU instructions...), even with
    ``TF_CPP_MIN_LOG_LEVEL=2``. Call this instead of ``import keras`` at the top
    of a script or notebook: TensorFlow, when it is installed (it is the
    default backend, and `tf.data` feeds every backend), is started first with
    those known notices dropped; every other message still appears. Set
    ``TF_CPP_MIN_LOG_LEVEL=0`` to see everything.

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

    return keras
