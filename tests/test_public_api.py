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


def test_the_package_imports_public_keras_and_tensorflow_api_only():
    """No private module (keras.src, tensorflow.python), so no upper pin on Keras is needed."""
    import ast
    from pathlib import Path

    private = ("keras.src", "keras._", "tensorflow.python", "tensorflow._")
    found = []
    for path in Path(keras_smalldata.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.Attribute) and node.attr in ("src", "python"):
                base = node.value
                names = [f"{base.id}.{node.attr}"] if isinstance(base, ast.Name) else []
            else:
                continue
            found += [f"{path.name}: {n}" for n in names if n.startswith(private)]
    assert found == []
