import subprocess
import sys

import keras_smalldata


def test_every_exported_name_resolves():
    missing = [name for name in keras_smalldata.__all__ if not hasattr(keras_smalldata, name)]
    assert missing == []


def test_unknown_name_is_an_attribute_error():
    try:
        keras_smalldata.freeze_everything  # noqa: B018
    except AttributeError as error:
        assert "freeze_everything" in str(error)
    else:
        raise AssertionError("no AttributeError")


def test_import_is_quiet_and_does_not_start_tensorflow():
    code = (
        "import sys, keras_smalldata\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'matplotlib') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
    assert result.stderr == ""
