"""Code fingerprints of pipeline steps (the code part of their cache keys).

A step is skipped, and its stored outputs reused, when its cache key (``_cache_key``)
matches a successful earlier execution. The key covers the step's code
fingerprint (:func:`code_fingerprint`), the content hashes of its inputs, its
constants, the versions of the packages it declares and the Python version.

What a code fingerprint covers
------------------------------
The step's own source and, recursively, every *project-local* function, class
and module it references: globals it loads (``helper(...)``), attributes of
project-local modules (``helpers.clean(...)`` counts ``helpers.clean``, not all of
``helpers``), modules it imports inside its body, closure variables, default
argument values, the functions behind ``__wrapped__`` (decorators), and the base
classes and methods of project-local classes. Module-level constants that are
immutable literals (``int``, ``float``, ``complex``, ``str``, ``bytes``, ``bool``,
``None`` and tuples/frozensets of them) are covered by value: changing
``THRESHOLD = 0.5`` changes the fingerprint.

*Project-local* means defined in a file outside the interpreter's installation
(the ``sysconfig`` ``stdlib``, ``platstdlib``, ``purelib`` and ``platlib`` paths)
and outside any ``site-packages``/``dist-packages`` folder. Code defined in
``__main__``, a notebook cell or ``exec``'d text counts as project-local;
``loopml`` itself never does. Everything else is library code, represented by
``distribution==version`` of its top-level package (the standard library by its
module name, builtins by their name) and never by its source. Installed
versions are remembered until an import folder on ``sys.path`` changes (an
install or upgrade), so keys stay fast and do not go stale in a long-lived
process.

Source is normalised before hashing: it is parsed and its AST dumped without
positions or docstrings, so comments, blank lines, formatting and docstrings do
not change a fingerprint. Lambdas and functions whose source is unavailable (a
REPL, ``exec``, C extensions) are hashed from their bytecode instead
(``co_code``, constants, names); such fingerprints are stable only for one
Python version, which the cache key records anyway.

Not covered: the contents of mutable values (a global ``dict``, a closed-over
frame or a callable instance's attributes are represented by their type; pass
such values as step parameters or inputs), and attribute chains on local
variables other than imported modules.
"""

from __future__ import annotations

import ast
import builtins
import dis
import functools
import hashlib
import inspect
import os
import sys
import sysconfig
import textwrap
import types
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

from loopml.errors import InvalidParameter
from loopml.pipelines import _versions
from loopml.pipelines._cache_key import FORMAT_VERSION, dumps_canonical, sha256_json

__all__ = ["code_fingerprint"]


_SELF_PACKAGE: Final = __name__.partition(".")[0]
_LIBRARY_FOLDERS: Final = frozenset({"site-packages", "dist-packages"})
_SCALAR_TYPES: Final = frozenset({int, float, complex, str, bytes, bool, type(None)})
_ATTRIBUTE_OPS: Final = frozenset({"LOAD_ATTR", "LOAD_METHOD"})
_GLOBAL_OPS: Final = frozenset({"LOAD_GLOBAL", "LOAD_NAME"})
_LONG_LITERAL: Final = 256

_Json = Any  # a JSON-able value (lists, dicts, str, int, None)
_T = TypeVar("_T")


# --- public API ---------------------------------------------------------------------------


def code_fingerprint(function: Callable[..., Any]) -> str:
    """Fingerprint a step's code and the project-local code it reaches.

    Args:
        function: the step's callable: a function, a lambda, a decorated function
            (followed through ``__wrapped__``), a ``functools.partial``, a bound
            method, a class or an instance with ``__call__``.

    Returns:
        A 64-character hex SHA-256 digest. Equal across processes and machines for
        equal code, referenced constants and library versions.

    Raises:
        InvalidParameter: if ``function`` is not callable.

    Example:
        >>> def double(x):
        ...     return 2 * x
        >>> len(code_fingerprint(double))
        64
    """
    if not callable(function):
        raise InvalidParameter(
            "The 'function' parameter of code_fingerprint must be callable. "
            f"Got {type(function).__name__} instead."
        )
    _versions.VERSIONS.refresh()
    walk = _Walk()
    root = walk.token(function)
    return sha256_json([FORMAT_VERSION, root, walk.nodes])


# --- project-local or library -------------------------------------------------------------


@functools.cache
def _library_roots() -> tuple[str, ...]:
    roots: set[str] = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            roots.add(os.path.realpath(path))
    return tuple(sorted(roots))


@functools.lru_cache(maxsize=8192)
def _is_project(module_name: str | None, filename: str | None) -> bool:
    """Whether code from this module and file is the user's (hashed by source)."""
    top = (module_name or "").partition(".")[0]
    if module_name == "__main__":  # scripts and notebook cells
        return True
    if top == _SELF_PACKAGE or top == "builtins" or top in sys.stdlib_module_names:
        return False
    if not filename:
        return False
    if filename.startswith("<"):  # "<string>", "<stdin>", "<ipython-input-…>", not "<frozen …>"
        return not filename.startswith("<frozen")
    path = os.path.realpath(filename)
    if _LIBRARY_FOLDERS.intersection(Path(path).parts):
        return False
    return not any(path == root or path.startswith(root + os.sep) for root in _library_roots())


def _module_file(module: types.ModuleType | None) -> str | None:
    if module is None:
        return None
    filename = getattr(module, "__file__", None)
    if filename:
        return str(filename)
    search = getattr(module, "__path__", None)  # namespace packages have no __file__
    return next((str(entry) for entry in search or ()), None)


def _is_project_module(module: types.ModuleType) -> bool:
    return _is_project(module.__name__, _module_file(module))


# --- per-object analysis, cached by identity ----------------------------------------------


class _IdentityCache:
    """Results keyed by object identity; an entry dies with its object."""

    def __init__(self) -> None:
        self._entries: dict[int, tuple[weakref.ref[Any], Any]] = {}

    def get(self, obj: object, compute: Callable[[], _T]) -> _T:
        key = id(obj)
        entry = self._entries.get(key)
        if entry is not None and entry[0]() is obj:
            return entry[1]  # type: ignore[no-any-return]
        value = compute()
        try:
            ref = weakref.ref(obj, functools.partial(self._forget, key))
        except TypeError:  # not weak-referenceable: do not cache
            return value
        self._entries[key] = (ref, value)
        return value

    def _forget(self, key: int, ref: weakref.ref[Any]) -> None:
        entry = self._entries.get(key)
        if entry is not None and entry[0] is ref:  # the id may already be reused
            del self._entries[key]


@dataclass(frozen=True)
class _CodeInfo:
    digest: str
    globals: tuple[tuple[str, ...], ...]  # attribute paths starting at a global name
    imports: tuple[tuple[int, str, str], ...]  # (relative level, module, imported name or "")


_CODE_INFO = _IdentityCache()
_CLASS_DIGESTS = _IdentityCache()
_MODULE_DIGESTS: dict[tuple[str, int, int], str] = {}


def _code_info(code: types.CodeType, doc: object) -> _CodeInfo:
    def compute() -> _CodeInfo:
        paths, imports = _references(code)
        return _CodeInfo(_function_digest(code, doc), paths, imports)

    return _CODE_INFO.get(code, compute)


def _nested_codes(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _nested_codes(const)


def _references(
    code: types.CodeType,
) -> tuple[tuple[tuple[str, ...], ...], tuple[tuple[int, str, str], ...]]:
    """Global names (with attribute chains) and imports used by code and its nested code."""
    paths: set[tuple[str, ...]] = set()
    imports: set[tuple[int, str, str]] = set()
    for nested in _nested_codes(code):
        chain: list[str] | None = None
        importing: tuple[int, str] | None = None
        recent: list[object] = [None, None]  # the last two LOAD_CONST values
        for ins in dis.get_instructions(nested):
            op = ins.opname
            if chain is not None and op in _ATTRIBUTE_OPS:
                chain.append(str(ins.argval))
                continue
            if chain is not None:
                paths.add(tuple(chain))
                chain = None
            if op in _GLOBAL_OPS:
                chain = [str(ins.argval)]
            elif op == "IMPORT_NAME":
                level = recent[0] if isinstance(recent[0], int) else 0
                importing = (level, str(ins.argval))
                fromlist = recent[1]
                if not isinstance(fromlist, tuple) or "*" in fromlist:  # not "from m import a"
                    imports.add((*importing, ""))
            elif op == "IMPORT_FROM" and importing is not None:
                imports.add((*importing, str(ins.argval)))
            recent = [recent[1], ins.argval] if op == "LOAD_CONST" else [None, None]
        if chain is not None:
            paths.add(tuple(chain))
    return tuple(sorted(paths)), tuple(sorted(imports))


def _normalised_source_digest(source: str) -> str | None:
    """Digest of source's AST without positions and docstrings; None if it does not parse."""
    try:
        tree = ast.parse(textwrap.dedent(source))
    except SyntaxError:
        try:  # an indented block whose string literals defeat dedent
            wrapper = ast.parse("if True:\n" + source)
        except SyntaxError:
            return None
        tree = ast.Module(body=wrapper.body[0].body, type_ignores=[])  # type: ignore[attr-defined]
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Module):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
    return "ast:" + hashlib.sha256(ast.dump(tree).encode("utf-8")).hexdigest()


def _function_digest(code: types.CodeType, doc: object) -> str:
    if code.co_name != "<lambda>":  # a lambda's source line may hold other code too
        try:
            source = inspect.getsource(code)
        except (OSError, TypeError):
            source = ""
        digest = _normalised_source_digest(source) if source else None
        if digest is not None:
            return digest
    return "bytecode:" + sha256_json(_code_canonical(code, doc))


def _code_canonical(code: types.CodeType, doc: object = None) -> _Json:
    consts = list(code.co_consts)
    if doc is not None and consts and consts[0] == doc:  # the docstring does not count
        consts[0] = None
    return [
        code.co_name,
        code.co_argcount,
        code.co_posonlyargcount,
        code.co_kwonlyargcount,
        code.co_flags,
        code.co_code.hex(),
        list(code.co_names),
        list(code.co_varnames),
        list(code.co_freevars),
        list(code.co_cellvars),
        [_const_canonical(const) for const in consts],
    ]


def _const_canonical(const: object) -> _Json:
    if isinstance(const, types.CodeType):
        return ["code", _code_canonical(const)]
    if isinstance(const, tuple):
        return ["tuple", [_const_canonical(item) for item in const]]
    if isinstance(const, frozenset):  # iteration order depends on PYTHONHASHSEED
        items = (_const_canonical(item) for item in const)
        return ["frozenset", sorted(items, key=dumps_canonical)]
    return [type(const).__name__, repr(const)]


def _class_digest(cls: type) -> str:
    def compute() -> str:
        try:
            source = inspect.getsource(cls)
        except (OSError, TypeError):
            source = ""
        digest = _normalised_source_digest(source) if source else None
        # Without source the member functions' own nodes still cover the code.
        return digest or "class-without-source:" + cls.__qualname__

    return _CLASS_DIGESTS.get(cls, compute)


def _module_digest(module: types.ModuleType) -> str:
    filename = _module_file(module)
    try:
        stat = Path(filename).stat() if filename else None
    except OSError:
        stat = None
    if filename is None or stat is None:
        return "module-without-source:" + module.__name__
    key = (filename, stat.st_mtime_ns, stat.st_size)  # importlib.reload keeps the object
    digest = _MODULE_DIGESTS.get(key)
    if digest is None:
        try:
            source = inspect.getsource(module)
        except (OSError, TypeError):
            source = ""
        digest = _normalised_source_digest(source) if source else None
        digest = digest or "module-without-source:" + module.__name__
        _MODULE_DIGESTS[key] = digest
    return digest


def _literal(value: object) -> str | None:
    """A stable text for immutable literal values, None for anything else."""
    kind = type(value)
    if kind in _SCALAR_TYPES:
        text = f"{kind.__name__}:{value!r}"
    elif kind is tuple or kind is frozenset:
        parts = [_literal(item) for item in value]  # type: ignore[attr-defined]
        if any(part is None for part in parts):
            return None
        ordered = parts if kind is tuple else sorted(parts)  # type: ignore[type-var]
        text = f"{kind.__name__}:({','.join(ordered)})"  # type: ignore[arg-type]
    else:
        return None
    if len(text) > _LONG_LITERAL:
        text = f"{kind.__name__}:sha256:{hashlib.sha256(text.encode()).hexdigest()}"
    return text


# --- the walk over referenced code --------------------------------------------------------


class _Walk:
    """One fingerprint's traversal.

    Project-local functions and classes become nodes, numbered in the order they
    are first reached (deterministic: references are visited sorted by name), so
    cycles end at an already numbered node and equal code numbers equally.
    """

    def __init__(self) -> None:
        self.nodes: list[_Json] = []
        self._index: dict[int, int] = {}
        self._alive: list[object] = []  # keeps ids unique for the walk's lifetime
        self._unwrapping: set[int] = set()

    def token(self, obj: object) -> _Json:
        """What stands for obj in a fingerprint."""
        literal = _literal(obj)
        if literal is not None:
            return ["const", literal]
        if isinstance(obj, types.FunctionType):
            wrapped = obj.__dict__.get("__wrapped__")
            # Where the code was defined: functools.wraps copies __module__ from the wrapped.
            module = obj.__globals__.get("__name__", obj.__module__)
            if _is_project(module, obj.__code__.co_filename):
                own = ["node", self._visit(obj)]
            else:
                own = self._library_token(module, obj.__qualname__)
            return own if wrapped is None else ["wrapped", own, self._unwrap(obj, wrapped)]
        if isinstance(obj, type):
            if _is_project(obj.__module__, _module_file(sys.modules.get(obj.__module__))):
                return ["node", self._visit(obj)]
            return self._library_token(obj.__module__, obj.__qualname__)
        if isinstance(obj, types.ModuleType):
            if _is_project_module(obj):
                return ["module", obj.__name__, _module_digest(obj)]
            return self._library_token(obj.__name__, obj.__name__)
        if isinstance(obj, types.MethodType | staticmethod | classmethod):
            return self.token(obj.__func__)
        if isinstance(obj, functools.partial):
            return [
                "partial",
                self.token(obj.func),
                [self.token(arg) for arg in obj.args],
                [[name, self.token(arg)] for name, arg in sorted(obj.keywords.items())],
            ]
        if isinstance(obj, types.BuiltinFunctionType):
            module = obj.__module__ or getattr(type(obj.__self__), "__module__", None)
            return self._library_token(module, obj.__qualname__)
        token = ["instance", self.token(type(obj))]
        try:  # object.__getattribute__ skips a custom __getattr__ (no side effects)
            attributes = object.__getattribute__(obj, "__dict__")
        except AttributeError:
            attributes = {}
        wrapped = attributes.get("__wrapped__") if isinstance(attributes, dict) else None
        if wrapped is not None:
            token.append(self._unwrap(obj, wrapped))  # functools.lru_cache and friends
        return token

    def _unwrap(self, obj: object, wrapped: object) -> _Json:
        if id(obj) in self._unwrapping:  # a __wrapped__ cycle
            return ["cycle"]
        self._unwrapping.add(id(obj))
        try:
            return self.token(wrapped)
        finally:
            self._unwrapping.discard(id(obj))

    def _library_token(self, module: str | None, qualname: str) -> _Json:
        top = (module or "builtins").partition(".")[0]
        if top == "builtins":
            return ["builtin", qualname]
        if top in sys.stdlib_module_names:
            return ["stdlib", top]
        return ["package", *_versions.VERSIONS.library(top)]

    def _visit(self, obj: types.FunctionType | type) -> int:
        found = self._index.get(id(obj))
        if found is not None:
            return found
        index = len(self.nodes)
        self._index[id(obj)] = index
        self._alive.append(obj)
        self.nodes.append(None)
        if isinstance(obj, type):
            self.nodes[index] = self._class_node(obj)
        else:
            self.nodes[index] = self._function_node(obj)
        return index

    def _function_node(self, function: types.FunctionType) -> _Json:
        code = function.__code__
        info = _code_info(code, function.__doc__)
        namespace = function.__globals__
        refs: list[_Json] = [
            [".".join(path), self._resolve(namespace, path)] for path in info.globals
        ]
        for name, cell in zip(code.co_freevars, function.__closure__ or (), strict=False):
            try:
                value = cell.cell_contents
            except ValueError:  # not assigned yet
                refs.append([f"closure:{name}", ["empty"]])
            else:
                refs.append([f"closure:{name}", self.token(value)])
        for position, default in enumerate(function.__defaults__ or ()):
            refs.append([f"default:{position}", self.token(default)])
        for name, default in sorted((function.__kwdefaults__ or {}).items()):
            refs.append([f"default:{name}", self.token(default)])
        for level, module, name in info.imports:
            label = f"import:{'.' * level}{module}{':' + name if name else ''}"
            refs.append([label, self._import_token(namespace, level, module, name)])
        return [function.__qualname__, info.digest, refs]

    def _class_node(self, cls: type) -> _Json:
        refs: list[_Json] = [
            [f"base:{i}", self.token(base)] for i, base in enumerate(cls.__bases__)
        ]
        for name, member in sorted(vars(cls).items()):
            if isinstance(member, staticmethod | classmethod):
                member = member.__func__
            parts = (
                [member.fget, member.fset, member.fdel]
                if isinstance(member, property)
                else [member]
            )
            for part in parts:
                if isinstance(part, types.FunctionType):
                    refs.append([f"member:{name}", self.token(part)])
        return [cls.__qualname__, _class_digest(cls), refs]

    def _resolve(self, namespace: Mapping[str, Any], path: tuple[str, ...]) -> _Json:
        head = path[0]
        if head not in namespace:
            return ["builtin", head] if hasattr(builtins, head) else ["unresolved"]
        obj = namespace[head]
        for attribute in path[1:]:
            # Descend only through project modules: ``helpers.clean`` is the function,
            # ``np.linalg.norm`` is numpy's version.
            if not (isinstance(obj, types.ModuleType) and _is_project_module(obj)):
                break
            if attribute not in obj.__dict__:  # not module.__getattr__: no side effects
                break
            obj = obj.__dict__[attribute]
        return self.token(obj)

    def _import_token(
        self, namespace: Mapping[str, Any], level: int, module: str, name: str
    ) -> _Json:
        if level:
            package = str(namespace.get("__package__") or "")
            base = package.rsplit(".", level - 1)[0] if level > 1 else package
            module = f"{base}.{module}" if module else base
        loaded = sys.modules.get(module)
        if loaded is None:  # imported lazily and not yet: name its distribution if any
            top = module.partition(".")[0]
            if top in sys.stdlib_module_names or top in _versions.VERSIONS.distributions():
                return self._library_token(module, module)
            return ["unloaded", module]
        if name and _is_project_module(loaded):
            member = loaded.__dict__.get(name, sys.modules.get(f"{module}.{name}"))
            if member is not None:
                return self.token(member)
        return self.token(loaded)
