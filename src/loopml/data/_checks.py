"""Custom check functions, registered in the running process under stable names.

A custom expectation saved with a dataset's schema names its function; whoever
validates against that schema later must not run code the schema's author chose.
So a stored name is looked up only among the functions registered in the
validating process (:func:`register_check`), never imported. The older stored
form, an import path ``"package.module:function"``, is imported only when the
caller passes ``trust=True``.

Example:
    >>> @register_check("positive_balance")
    ... def positive_balance(frame):
    ...     return frame["balance"] >= 0
    >>> registered_check("positive_balance") is positive_balance
    True
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any, TypeVar, overload

from loopml.errors import InvalidParameter, SchemaError, UntrustedCheckError

__all__ = [
    "check_name_of",
    "check_reference",
    "import_path",
    "register_check",
    "registered_check",
    "resolve_check",
]

CheckFunction = Callable[..., Any]
F = TypeVar("F", bound=CheckFunction)

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,127}")
_PATH = re.compile(r"[A-Za-z_][\w.]{0,199}:[A-Za-z_][\w.]{0,199}")
_REGISTRY: dict[str, CheckFunction] = {}


@overload
def register_check(name: str) -> Callable[[F], F]: ...
@overload
def register_check(name: str, function: F) -> F: ...
def register_check(name: str, function: F | None = None) -> F | Callable[[F], F]:
    """Register ``function`` as the custom check called ``name`` in this process.

    Use it as a decorator (``@register_check("positive_balance")``) or call it.
    Saved expectations refer to the function by ``name``; validation runs it only
    in a process where it was registered.

    Args:
        name: a stable name: a letter or ``_``, then letters, digits, ``_ . -``
            (at most 128 characters; no ``:``, which marks import paths).
        function: ``f(frame) -> bool Series | bool``.

    Returns:
        ``function`` (or a decorator that registers and returns it).

    Raises:
        InvalidParameter: a malformed name, a function that is not callable, or a
            name already registered to a function defined elsewhere (registering the
            same definition again, e.g. from a reloaded module, replaces it).
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidParameter(
            "The 'name' parameter of register_check must start with a letter or '_' and use "
            f"only letters, digits, '_', '.' and '-' (at most 128 characters). Got {name!r}."
        )

    def add(target: F) -> F:
        if not callable(target):
            raise InvalidParameter(
                f"register_check({name!r}) needs a callable. Got {target!r} instead."
            )
        current = _REGISTRY.get(name)
        if current is not None and _definition(current) != _definition(target):
            raise InvalidParameter(
                f"The custom check name {name!r} is already registered to "
                f"{_origin(current)}; choose another name for {_origin(target)}."
            )
        _REGISTRY[name] = target  # the same definition again (a module reloaded) replaces it
        return target

    return add if function is None else add(function)


def registered_check(name: str) -> CheckFunction | None:
    """Return the function registered as ``name`` in this process, if any."""
    return _REGISTRY.get(name)


def check_name_of(function: object) -> str | None:
    """Return the name ``function`` is registered under, if it is."""
    return next((name for name, f in _REGISTRY.items() if f is function), None)


def check_reference(reference: str) -> str:
    """Return ``reference`` if it is a check name or a ``module:function`` path (not imported).

    Raises:
        InvalidParameter: it is neither.
    """
    if _NAME.fullmatch(reference) or _PATH.fullmatch(reference):
        return reference
    raise InvalidParameter(
        "The 'function' of a custom expectation must be a callable, the name of a check "
        f"registered with loopml.data.register_check, or 'module:function'. Got {reference!r}."
    )


def resolve_check(reference: str, *, trust: bool) -> CheckFunction:
    """Return the function a stored custom expectation names.

    A name is looked up among the registered checks; an import path is imported
    only when ``trust`` is true.

    Raises:
        SchemaError: no check is registered under the name, or the path does not
            import to a callable.
        UntrustedCheckError: the reference is an import path and ``trust`` is false.
    """
    if ":" not in reference:
        found = _REGISTRY.get(reference)
        if found is None:
            raise SchemaError(
                f"The custom check {reference!r} is not registered in this process; register "
                f"it with loopml.data.register_check({reference!r}) before validating."
            )
        return found
    if not trust:
        attr = reference.partition(":")[2]
        raise UntrustedCheckError(
            f"The custom check {reference!r} names code by import path, and stored checks do "
            f"not import code unless trusted. Register the function with "
            f"loopml.data.register_check({attr.rsplit('.', 1)[-1]!r}) in the validating "
            f"process and save the expectation under that name, or, if you trust whoever "
            f"wrote this schema, validate with trust=True (CLI: --trust)."
        )
    return _import(reference)


def import_path(function: object) -> str:
    """Return ``"module:qualname"`` for a module-level function.

    Raises:
        SchemaError: lambdas, local functions and functions of ``__main__`` have none.
    """
    module = getattr(function, "__module__", None)
    qualname = getattr(function, "__qualname__", "")
    if not module or not qualname or "<" in qualname or module == "__main__":
        raise SchemaError(
            f"The custom expectation function {function!r} cannot be saved: register it "
            "with loopml.data.register_check(NAME) (lambdas, local and __main__ functions "
            "have no import path)."
        )
    return f"{module}:{qualname}"


def _definition(function: object) -> object:
    """Where a function was defined: re-running a definition (a reloaded module, a
    notebook cell run again) gives a new object with the same place."""
    module = getattr(function, "__module__", None)
    qualname = getattr(function, "__qualname__", None)
    return function if module is None or qualname is None else (module, qualname)


def _origin(function: object) -> str:
    try:
        return import_path(function)
    except SchemaError:
        return repr(function)


def _import(path: str) -> CheckFunction:
    module_name, _, attr = path.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError, ValueError) as exc:
        raise SchemaError(
            f"The custom expectation function {path!r} cannot be imported "
            f"(expected 'module:function'): {exc}."
        ) from exc
    if not callable(target):
        raise SchemaError(f"The custom expectation function {path!r} is not a callable.")
    return target  # type: ignore[no-any-return]
