import ast
import builtins
import functools
import subprocess
import sys
from pathlib import Path

import keras_smalldata

PACKAGE = Path(keras_smalldata.__file__).parent
TESTS = Path(__file__).parent
REFLECTION = ("getattr", "setattr", "hasattr", "delattr")
# Bases that bring no private attribute of another package with them.
NEUTRAL_BASES = ("ABC", "Enum", "Generic", "NamedTuple", "Protocol", "TypedDict")


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


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _parse(folder: Path) -> dict:
    return {
        path: ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for path in sorted(folder.rglob("*.py"))
    }


def _private_name_used(node) -> tuple[str, ast.AST] | None:
    """``(name, receiver)`` of ``x._name``, ``getattr(x, "_name")`` (setattr,
    hasattr, delattr, ``monkeypatch.setattr``), ``vars(x)["_name"]`` or
    ``x.__dict__["_name"]``; None for anything else."""
    if isinstance(node, ast.Attribute):
        return (node.attr, node.value) if _is_private(node.attr) else None
    if isinstance(node, ast.Call) and len(node.args) >= 2:
        function = node.func
        name = function.id if isinstance(function, ast.Name) else getattr(function, "attr", None)
        key = node.args[1]
        if name in REFLECTION and _is_private_constant(key):
            return key.value, node.args[0]
    if isinstance(node, ast.Subscript) and _is_private_constant(node.slice):
        namespace = node.value
        if isinstance(namespace, ast.Attribute) and namespace.attr == "__dict__":
            return node.slice.value, namespace.value
        if (
            isinstance(namespace, ast.Call)
            and getattr(namespace.func, "id", None) == "vars"
            and namespace.args
        ):
            return node.slice.value, namespace.args[0]
    return None


def _is_private_constant(node) -> bool:
    return (
        isinstance(node, ast.Constant) and isinstance(node.value, str) and _is_private(node.value)
    )


def _is_self(node) -> bool:
    """``self``, ``cls`` or ``super()``: the object of the class being defined."""
    if isinstance(node, ast.Name):
        return node.id in ("self", "cls")
    return isinstance(node, ast.Call) and getattr(node.func, "id", None) == "super"


def _definitions(trees: dict) -> tuple[set, dict]:
    """The private names a body of code defines, and its classes.

    Returns ``(names, classes)``: every private name the code defines
    (private modules, functions, classes, module and class variables, the
    attributes it sets on ``self`` or ``cls``), and for each class its base
    names and the private names it defines.
    """
    names, classes = set(), {}
    for path, tree in trees.items():
        if _is_private(path.stem):
            names.add(path.stem)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.alias):
                names.add((node.asname or node.name).split(".")[0])
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names.update(
                    sub.id for t in targets for sub in ast.walk(t) if isinstance(sub, ast.Name)
                )
            if not isinstance(node, ast.ClassDef):
                continue
            defined = set()
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    defined.add(item.name)
                elif isinstance(item, (ast.Assign, ast.AnnAssign)):
                    targets = item.targets if isinstance(item, ast.Assign) else [item.target]
                    defined.update(t.id for t in targets if isinstance(t, ast.Name))
            for sub in ast.walk(node):
                targets = []
                if isinstance(sub, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                    targets = sub.targets if isinstance(sub, ast.Assign) else [sub.target]
                for target in targets:
                    defined.update(
                        t.attr
                        for t in ast.walk(target)
                        if isinstance(t, ast.Attribute) and _is_self(t.value)
                    )
                used = _private_name_used(sub)
                if used and isinstance(sub, ast.Call) and getattr(sub.func, "id", None) == "setattr":
                    defined.add(used[0])
            bases = [ast.unparse(base).rsplit(".", 1)[-1] for base in node.bases]
            classes[node.name] = (bases, {n for n in defined if _is_private(n)})
            names.update(defined)
    return {n for n in names if _is_private(n)}, classes


def _lineage(name: str, classes: dict) -> tuple[set, bool]:
    """The private names a class and its ancestors in this code define; and
    whether it extends a class of another package (Keras' Layer, Callback...)."""
    defined, foreign, todo, seen = set(), False, [name], set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        if current in classes:
            bases, own = classes[current]
            defined |= own
            todo += bases
        elif not (hasattr(builtins, current) or current in NEUTRAL_BASES):
            foreign = True
    return defined, foreign


@functools.cache
def _their_private_names() -> frozenset:
    """Private attribute names of the Keras and TensorFlow objects the package extends or uses."""
    import keras

    objects = [
        keras.layers.Layer(),
        keras.layers.RandomFlip(),
        keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]),
        keras.callbacks.Callback(),
        keras.callbacks.EarlyStopping(),
        keras.optimizers.SGD(),
        keras.metrics.Mean(),
        keras.losses.MeanSquaredError(),
        keras.random.SeedGenerator(0),
    ]
    try:
        import tensorflow as tf

        objects.append(tf.data.Dataset.range(2).map(lambda x: x))
    except ImportError:
        pass
    names = set()
    for obj in objects:
        names.update(dir(obj), getattr(obj, "__dict__", {}))
    return frozenset(name for name in names if _is_private(name))


def _private_accesses(trees: dict, owned: set, classes: dict, theirs: set) -> list[str]:
    """``file:line: code`` for each private attribute that is not the code's own.

    A private name read or written on ``self``, ``cls`` or ``super()`` must
    be defined by that class or its ancestors in this code and, in a class
    that extends another package's class, must not be one of that package's
    own private names (``self._trainable_variables`` in an optimizer). On
    any other object it must be a name this code defines and not one of
    Keras' or TensorFlow's (``model._layers``). ``getattr(x, "_name")``,
    ``setattr``, ``hasattr``, ``delattr`` and ``monkeypatch.setattr`` count
    as access.
    """
    found = []

    def visit(node, path, lineage):
        if isinstance(node, ast.ClassDef):
            lineage = _lineage(node.name, classes)
        used = _private_name_used(node)
        if used:
            name, receiver = used
            if _is_self(receiver) and lineage is not None:
                defined, foreign = lineage
                ours = name in defined and not (foreign and name in theirs)
            else:
                ours = name in owned and name not in theirs
            if not ours:
                where = path.relative_to(PACKAGE.parent)
                found.append(f"{where}:{node.lineno}: {ast.unparse(node)}")
        for child in ast.iter_child_nodes(node):
            visit(child, path, lineage)

    for path, tree in trees.items():
        visit(tree, path, None)
    return found


def test_the_private_attribute_walk_tells_ours_from_theirs():
    code = '''
import keras
import sys
from keras_smalldata.features import _tf_data

class Mine:
    def __init__(self):
        self._count = 0

    def grow(self, other):
        self._count += 1
        return other._count + _tf_data._unknown_here

class Wrapped(keras.optimizers.Optimizer):
    def build(self, variables):
        self._trained = list(variables)
        self._trainable_variables = variables  # Keras' own name

    def apply(self, grads):
        return self._trained, self._get_variable_index(grads), super()._var_key(grads)

def peek(metric, dataset, model):
    setattr(model, "_trained", None)
    return (getattr(metric, "_direction", None), dataset._variant_tensor,
            model._layers, sys._getframe(0), hasattr(model, "_count"),
            vars(model)["_layers"], model.__dict__["_count"])
'''
    path = PACKAGE / "snippet.py"
    trees = {path: ast.parse(code)}
    owned, classes = _definitions(trees)
    found = _private_accesses(trees, owned, classes, _their_private_names())
    assert [line.split(": ", 1)[1] for line in found] == [
        "_tf_data._unknown_here",
        "self._trainable_variables",
        "self._get_variable_index",
        "super()._var_key",
        "getattr(metric, '_direction', None)",
        "dataset._variant_tensor",
        "model._layers",
        "sys._getframe",
        "vars(model)['_layers']",
    ]


def test_the_package_uses_no_private_attribute_of_another_package():
    """An ast walk over every attribute access: Keras 3's public API only (issue 24)."""
    trees = _parse(PACKAGE)
    owned, classes = _definitions(trees)
    found = _private_accesses(trees, owned, classes, _their_private_names())
    assert found == []


def test_the_tests_use_no_private_attribute_of_another_package():
    """The tests may reach into this package's own parts, never into Keras', TensorFlow's
    or matplotlib's (``figure._suptitle``)."""
    package_trees, test_trees = _parse(PACKAGE), _parse(TESTS)
    owned, classes = _definitions({**package_trees, **test_trees})
    found = _private_accesses(test_trees, owned, classes, _their_private_names())
    assert found == []
