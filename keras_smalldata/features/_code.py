"""Digests of Python code as it runs: functions, classes and what they reference.

The feature cache must see a change in the code of a user-defined layer, or in
a helper function an augmentation calls, even when no configuration shows it.
`CodeWalker.describe` turns a value into a JSON-able description that changes
whenever the code that would run changes:

- a function is described by its compiled code (the bytecode, constants and
  names of its code object and of the code objects nested in it: not the
  source text, which may have been edited since the module was imported, and
  not line numbers, which move when other code is edited), its defaults, the
  values in its closure and the globals it names, followed recursively;
- a class by the functions and values of its own namespace and of its
  user-defined base classes;
- a module that a function reaches through an attribute (``helpers.scale``) by
  the attributes the function names;
- library code (the standard library, installed packages) by its qualified
  name and the version of its package: its code changes only with the version;
- data (numbers, strings, arrays, tensors, containers) by its values.

What cannot be read this way (an object implemented in C with no readable
state) is described by its type only and listed in `opaque`; `user_code`
tells whether any code outside libraries and Keras (and this package) was
met. Both decide whether the probe of ``_probe.py`` is needed.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import site
import sys
import sysconfig
import types

import keras
import numpy as np

# Packages whose code is fingerprinted but trusted to compute the same thing
# from the same inputs (no hidden state): their layers need no probe.
_TRUSTED_PACKAGES = ("keras", "keras_smalldata")
# Keras, NumPy and the backends: the cache key holds their versions (Keras',
# NumPy's, the running backend's and TensorFlow's when it reads the data; see
# `fingerprint.environment`), so their code is library code wherever it is
# imported from (a source checkout on PYTHONPATH too) and is never walked.
_VERSIONED_PACKAGES = ("keras", "numpy", "tensorflow", "jax", "torch")
# Limits that keep describing a large object graph cheap and finite.
_MAX_DEPTH = 12
_MAX_NODES = 20_000
_DUNDER_SKIP = {
    "__module__", "__qualname__", "__doc__", "__dict__", "__weakref__",
    "__annotations__", "__firstlineno__", "__static_attributes__", "__slotnames__",
    "_abc_impl",  # ABCMeta's cache of subclass checks
}
# Methods and attributes implemented in C (``object.__init__``, ``str.join``...).
_SLOT_TYPES = (
    types.MethodWrapperType,
    types.WrapperDescriptorType,
    types.MethodDescriptorType,
    types.ClassMethodDescriptorType,
    types.GetSetDescriptorType,
    types.MemberDescriptorType,
)


@functools.lru_cache(maxsize=1)
def _library_roots() -> tuple[str, ...]:
    paths = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            paths.add(os.path.realpath(path))
    for path in list(getattr(site, "getsitepackages", lambda: [])()) + [site.getusersitepackages()]:
        if path:
            paths.add(os.path.realpath(path))
    return tuple(sorted(p.rstrip(os.sep) + os.sep for p in paths))


@functools.lru_cache(maxsize=4096)
def _module_is_library(module_name: str) -> bool:
    """True for built-in, standard-library and installed modules (not the user's own)."""
    top = module_name.split(".")[0]
    if top in sys.builtin_module_names or top in getattr(sys, "stdlib_module_names", ()):
        return True
    if top in _VERSIONED_PACKAGES:
        return True
    path = getattr(sys.modules.get(top), "__file__", None)
    if path is None:  # a notebook's __main__, code run with exec: the user's
        return False
    return os.path.realpath(path).startswith(_library_roots())


@functools.lru_cache(maxsize=1024)
def _package_version(module_name: str) -> str | None:
    top = module_name.split(".")[0]
    version = getattr(sys.modules.get(top), "__version__", None)
    if version is None:
        try:
            version = importlib.metadata.version(top)
        except (importlib.metadata.PackageNotFoundError, ValueError):
            version = None
    return None if version is None else str(version)


def is_library_code(obj) -> bool:
    """True for a function or class from the standard library or an installed package."""
    return _module_is_library(getattr(obj, "__module__", None) or "")


def _is_trusted(module_name: str) -> bool:
    return module_name.split(".")[0] in _TRUSTED_PACKAGES


def _canonical(value) -> str:
    """``repr`` of a code constant, with sets in a stable order."""
    if isinstance(value, (frozenset, set)):
        return "{" + ",".join(sorted(_canonical(v) for v in value)) + "}"
    if isinstance(value, tuple):
        return "(" + ",".join(_canonical(v) for v in value) + ")"
    return repr(value)


@functools.lru_cache(maxsize=4096)
def _code_digest(code: types.CodeType) -> str:
    """SHA-256 of what a code object executes (no file name, no line numbers)."""
    digest = hashlib.sha256()
    digest.update(code.co_code)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            digest.update(b"code:" + _code_digest(const).encode())
        else:
            digest.update(_canonical(const).encode("utf-8", "backslashreplace"))
        digest.update(b"\0")
    for part in (code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars):
        digest.update(repr(part).encode())
    digest.update(
        repr(
            (code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount, code.co_flags)
        ).encode()
    )
    return digest.hexdigest()


def _names(code: types.CodeType) -> set[str]:
    """The global and attribute names a code object and its nested code objects use."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def _address_free_repr(value) -> str | None:
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a repr that fails tells nothing
        return None
    return None if " at 0x" in text else text


class CodeWalker:
    """Describes values and the code they reference, for a fingerprint.

    Args:
        describe_layer: ``describe_layer(layer, walker)`` describes a Keras
            layer met on the way (a layer in a closure, a global layer).

    Attributes:
        user_code: True once code outside libraries, Keras and this package
            was described.
        opaque: Type names of objects whose state could not be read.
    """

    def __init__(self, describe_layer):
        self.describe_layer = describe_layer
        self.user_code = False
        self.opaque: list[str] = []
        self._nodes = 0
        self._active: dict[int, int] = {}
        self._done: dict[int, object] = {}
        self._keep_alive: list = []  # ids stay unique while the walk lasts

    def describe(self, value, depth: int = 0):
        """A JSON-able description of ``value`` and the code it reaches."""
        if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
            return [type(value).__name__, repr(value)]
        key = id(value)
        if key in self._done:
            return self._done[key]
        if key in self._active:
            return ["cycle", self._active[key]]
        self._nodes += 1
        if depth > _MAX_DEPTH or self._nodes > _MAX_NODES:
            self.opaque.append(f"{type(value).__qualname__} (too deep to describe)")
            return ["deep", type(value).__qualname__]
        self._active[key] = len(self._active)
        self._keep_alive.append(value)
        try:
            result = self._describe(value, depth + 1)
        finally:
            del self._active[key]
        self._done[key] = result
        return result

    def _describe(self, value, depth):
        if isinstance(value, (tuple, list)):
            return [type(value).__name__, [self.describe(v, depth) for v in value]]
        if isinstance(value, (set, frozenset)):
            items = [self.describe(v, depth) for v in value]
            return [type(value).__name__, sorted(items, key=repr)]
        if isinstance(value, dict):
            items = [(self.describe(k, depth), self.describe(v, depth)) for k, v in value.items()]
            return ["dict", sorted(items, key=lambda item: repr(item[0]))]
        if isinstance(value, np.ndarray):
            return self._array(value)
        if isinstance(value, np.generic):
            return ["numpy", value.dtype.str, repr(value.item())]
        if isinstance(value, functools.partial):
            return [
                "partial",
                self.describe(value.func, depth),
                self.describe(value.args, depth),
                self.describe(value.keywords, depth),
            ]
        if isinstance(value, types.MethodType):
            return ["method", self.describe(value.__func__, depth), self.describe(value.__self__, depth)]
        if isinstance(value, types.FunctionType):
            return self._function(value, depth)
        if isinstance(value, (types.BuiltinFunctionType, types.BuiltinMethodType)):
            module = getattr(value, "__module__", None) or type(getattr(value, "__self__", None)).__module__
            return ["builtin", f"{module}.{value.__qualname__}", _package_version(module or "builtins")]
        if isinstance(value, _SLOT_TYPES):
            owner = getattr(value, "__objclass__", None) or type(value.__self__)
            return self._library("slot", owner.__module__, f"{owner.__qualname__}.{value.__name__}")
        if isinstance(value, type):
            return self._class(value, depth)
        if isinstance(value, types.ModuleType):
            return self._module(value, (), depth)
        if isinstance(value, (staticmethod, classmethod)):
            return [type(value).__name__, self.describe(value.__func__, depth)]
        if isinstance(value, property):
            return ["property", [self.describe(f, depth) for f in (value.fget, value.fset, value.fdel)]]
        return self._object(value, depth)

    @staticmethod
    def _array(array: np.ndarray):
        if array.dtype.hasobject:
            return ["ndarray", array.dtype.str, list(array.shape), repr(array.tolist())]
        data = np.ascontiguousarray(array)
        return ["ndarray", data.dtype.str, list(data.shape), hashlib.sha256(data.tobytes()).hexdigest()]

    def _library(self, kind: str, module: str, qualname: str):
        return [kind, f"{module}.{qualname}", _package_version(module)]

    def _function(self, function: types.FunctionType, depth):
        module = function.__module__ or ""
        if _module_is_library(module):
            return self._library("library function", module, function.__qualname__)
        if not _is_trusted(module):
            self.user_code = True
        code = function.__code__
        names = _names(code)
        scope = function.__globals__
        closure = [
            self.describe(cell.cell_contents, depth) if _cell_has_value(cell) else ["empty cell"]
            for cell in (function.__closure__ or ())
        ]
        referenced = {}
        for name in sorted(names):
            if name not in scope:
                continue  # an attribute name, a builtin or an undefined name
            target = scope[name]
            if target is function:
                referenced[name] = ["self"]
            elif isinstance(target, types.ModuleType):
                referenced[name] = self._module(target, names, depth)
            else:
                referenced[name] = self.describe(target, depth)
        return [
            "function",
            f"{module}.{function.__qualname__}",
            _code_digest(code),
            self.describe(function.__defaults__, depth),
            self.describe(function.__kwdefaults__, depth),
            closure,
            referenced,
        ]

    def _module(self, module: types.ModuleType, names, depth):
        name = module.__name__
        if _module_is_library(name):
            return ["library module", name, _package_version(name)]
        # Only what the referencing code names: a module holds much else.
        attributes = {
            n: self.describe(getattr(module, n), depth)
            for n in sorted(names)
            if hasattr(module, n) and not isinstance(getattr(module, n), types.ModuleType)
        }
        return ["module", name, attributes]

    def _class(self, cls: type, depth):
        module = cls.__module__ or ""
        if _module_is_library(module):
            return self._library("library class", module, cls.__qualname__)
        if not _is_trusted(module):
            self.user_code = True
        bases = [self.describe(base, depth) for base in cls.__bases__ if base is not object]
        namespace = {
            name: self.describe(member, depth)
            for name, member in sorted(vars(cls).items())
            if name not in _DUNDER_SKIP
        }
        return ["class", f"{module}.{cls.__qualname__}", bases, namespace]

    def _object(self, value, depth):
        if isinstance(value, keras.layers.Layer):
            return ["layer", self.describe_layer(value, self)]
        array = _tensor_value(value)
        if array is not None:
            return self._array(array)
        cls = type(value)
        kind = self.describe(cls, depth)
        state = None
        if hasattr(value, "__dict__") and isinstance(vars(value), dict):
            state = {k: self.describe(v, depth) for k, v in sorted(vars(value).items())}
        elif getattr(cls, "__slots__", None):
            slots = [s for s in np.atleast_1d(cls.__slots__) if hasattr(value, s)]
            state = {s: self.describe(getattr(value, s), depth) for s in sorted(slots)}
        if state is not None:
            return ["object", kind, state]
        text = _address_free_repr(value)
        if text is None:
            self.opaque.append(f"{cls.__module__}.{cls.__qualname__}")
            return ["opaque", kind]
        return ["object", kind, text]


def _cell_has_value(cell) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - raises ValueError for an empty cell
    except ValueError:
        return False
    return True


def _tensor_value(value) -> np.ndarray | None:
    """The values of a Keras variable or of a tensor of any framework, or None."""
    if isinstance(value, keras.Variable):
        return keras.ops.convert_to_numpy(value.value)
    if keras.ops.is_tensor(value):
        return keras.ops.convert_to_numpy(value)
    module = type(value).__module__ or ""
    if module.split(".")[0] in ("tensorflow", "torch", "jax", "jaxlib"):
        if hasattr(value, "detach"):  # a PyTorch tensor, perhaps with gradients
            value = value.detach().cpu()
        try:
            array = np.asarray(value)
        except Exception:  # noqa: BLE001 - not an array after all
            return None
        return array if array.dtype != object else None
    return None
