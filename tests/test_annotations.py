"""Every public parameter and return of the package carries a type annotation.

The package ships ``py.typed``, so a type checker trusts the annotations of what
``keras_smalldata.__all__`` exports: functions, the exported classes' constructors,
their public methods and properties, and the Keras methods of the library's layers.
"""

import importlib
import inspect
import pkgutil

import keras_smalldata

PACKAGE = keras_smalldata.__name__
# Methods a Keras layer exposes to Keras itself (serialization, shape inference).
LAYER_METHODS = ("__init__", "call", "compute_output_shape", "get_config", "from_config")


def _in_package(obj):
    return (getattr(obj, "__module__", None) or "").split(".")[0] == PACKAGE


def _missing(function, where):
    """The parameters and return of ``function`` that have no annotation."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # a builtin with no signature: not ours
        return []
    missing = []
    parameters = list(signature.parameters.values())
    for index, parameter in enumerate(parameters):
        if index == 0 and parameter.name in ("self", "cls"):
            continue
        if parameter.annotation is inspect.Parameter.empty:
            missing.append(f"{where}: parameter {parameter.name!r}")
    if signature.return_annotation is inspect.Signature.empty:
        missing.append(f"{where}: return")
    return missing


def _own_members(cls):
    """(name, function) for the public methods and property getters defined in this package."""
    seen = set()
    for klass in cls.__mro__:
        if not _in_package(klass):
            continue
        for name, member in vars(klass).items():
            if name in seen:
                continue
            seen.add(name)
            if name.startswith("_") and name not in ("__init__", "__call__"):
                continue
            if isinstance(member, (staticmethod, classmethod)):
                yield f"{klass.__qualname__}.{name}", member.__func__
            elif isinstance(member, property):
                if member.fget is not None:
                    yield f"{klass.__qualname__}.{name} (property)", member.fget
            elif inspect.isfunction(member):
                yield f"{klass.__qualname__}.{name}", member


def _exported():
    for name in keras_smalldata.__all__:
        obj = getattr(keras_smalldata, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            yield name, obj


def test_exports_are_found():
    names = dict(_exported())
    assert "extract_features" in names and "FeatureSet" in names
    assert len(names) > 60


def test_every_exported_function_and_class_is_annotated():
    missing = []
    for name, obj in _exported():
        if inspect.isfunction(obj):
            missing += _missing(obj, name)
        elif _in_package(obj):
            for where, function in _own_members(obj):
                missing += _missing(function, where)
    assert missing == [], "unannotated:\n" + "\n".join(missing)


def _library_layers():
    import keras

    for info in pkgutil.walk_packages(keras_smalldata.__path__, prefix=f"{PACKAGE}."):
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if (
                inspect.isclass(obj)
                and obj.__module__ == module.__name__
                and issubclass(obj, keras.layers.Layer)
            ):
                yield obj


def test_the_keras_methods_of_every_library_layer_are_annotated():
    layers = list(_library_layers())
    assert any(layer.__name__ == "RandomAffine" for layer in layers)
    missing = []
    for layer in layers:
        for name in LAYER_METHODS:
            member = vars(layer).get(name)
            if isinstance(member, (staticmethod, classmethod)):
                member = member.__func__
            if inspect.isfunction(member):
                missing += _missing(member, f"{layer.__module__}.{layer.__qualname__}.{name}")
    assert missing == [], "unannotated:\n" + "\n".join(missing)


def test_the_check_names_an_unannotated_parameter_and_return():
    def untyped(self, count, *args, label: str = "", **kwargs):
        return count

    assert _missing(untyped, "untyped") == [
        "untyped: parameter 'count'",
        "untyped: parameter 'args'",
        "untyped: parameter 'kwargs'",
        "untyped: return",
    ]
