"""Public names of a package imported from its private modules on first use (PEP 562).

A package ``__init__`` that imports every module eagerly makes the lightest of its
functions pay for the heaviest: ``from loopml.monitoring import detect_drift`` used to
load SQLAlchemy, the artifact back-ends and YAML (about 70 MiB resident) for a drift
check that needs none of them. A package declares where each public name lives and
gets a module ``__getattr__`` that imports that module only when the name is asked for;
the same imports, under ``TYPE_CHECKING``, give type checkers and the docs the names.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, origins: Mapping[str, Sequence[str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module ``__getattr__`` and ``__dir__`` for ``package``'s public names.

    Args:
        package: The package's dotted name (its ``__name__``).
        origins: Private module name (relative to ``package``) to the public names
            it defines.

    Returns:
        ``(__getattr__, __dir__)``: the first imports a name's module on first use and
        caches the name in the package's namespace; the second lists the public names.
    """
    where = {name: f"{package}.{module}" for module, names in origins.items() for name in names}
    public = sorted(where)

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        # Cached, so later look-ups are plain attribute reads that skip this function.
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return public

    return __getattr__, __dir__
