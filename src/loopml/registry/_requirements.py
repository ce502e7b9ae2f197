"""The pip requirements of a model version: what its flavor needs, pinned, plus the user's.

At registration the registry records, for the flavor that stores the model, the
distributions it needs to load and predict (``scikit-learn``, ``skops``, ``numpy``
… for ``sklearn``; ``xgboost``; ``lightgbm``; ``onnxruntime``; ``cloudpickle`` and
the packages the pickled object's classes come from for ``pyfunc``), each pinned
to the version installed in the registering environment, plus the user's
``extra_pip`` lines (which win over a captured pin of the same package). The lines
go into the model folder as ``requirements.txt`` (so they are part of the
version's content digest) and into the version's record.

Example:
    >>> from sklearn.linear_model import LinearRegression
    >>> lines = model_requirements("sklearn", LinearRegression(), ["pandas>=2"])
    >>> any(line.startswith("scikit-learn==") for line in lines), "pandas>=2" in lines
    (True, True)
"""

from __future__ import annotations

import importlib.metadata
import sys
from collections.abc import Iterable, Sequence

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from loopml.errors import InvalidParameter

__all__ = [
    "FLAVOR_MODULES",
    "MAX_EXTRA_PIP",
    "REQUIREMENTS_FILE",
    "model_requirements",
    "requirements_text",
]

REQUIREMENTS_FILE = "requirements.txt"

FLAVOR_MODULES: dict[str, tuple[str, ...]] = {
    "sklearn": ("sklearn", "skops", "numpy", "scipy"),
    "xgboost": ("xgboost", "numpy", "scipy"),
    "lightgbm": ("lightgbm", "numpy", "scipy"),
    "onnx": ("onnxruntime", "numpy"),
    "pyfunc": ("cloudpickle",),
}
"""The top-level modules each flavor needs to load and predict, by flavor name."""

MAX_EXTRA_PIP = 200
_MAX_LINE = 500
_MAX_ATTRIBUTES = 200  # attributes of a pyfunc object whose classes' packages are recorded
_NOT_PACKAGES = frozenset({"__main__", "builtins", "loopml"})
_DISTRIBUTION_OF = {"sklearn": "scikit-learn"}  # modules not named like their distribution


def model_requirements(flavor: str, model: object, extra_pip: Sequence[str] = ()) -> list[str]:
    """The pip requirement lines of ``model`` stored by ``flavor``, sorted by package.

    Args:
        flavor: the flavor's name (``sklearn``, ``xgboost``, ``lightgbm``, ``onnx``,
            ``pyfunc``).
        model: the model object (for ``pyfunc``, its classes name more packages).
        extra_pip: more requirement lines (PEP 508, e.g. ``"pandas>=2"``); a line
            naming a captured package replaces its pin.

    Returns:
        ``name==version`` lines for the installed packages the flavor needs, and
        the extra lines, one per package.

    Raises:
        InvalidParameter: an extra line is not a PEP 508 requirement, is too long,
            or there are too many (at most 200).
    """
    extras = _check_extra(extra_pip)
    modules = list(FLAVOR_MODULES.get(flavor, ()))
    if flavor == "pyfunc":
        modules += _object_modules(model)
    by_name: dict[str, str] = {}
    for distribution in _distributions(modules):
        name = distribution.metadata["Name"]
        by_name.setdefault(canonicalize_name(name), f"{name}=={distribution.version}")
    for requirement, line in extras:
        by_name[canonicalize_name(requirement.name)] = line
    return [by_name[key] for key in sorted(by_name)]


def requirements_text(lines: Iterable[str]) -> str:
    """``requirements.txt`` content: one line each, newline-terminated."""
    return "".join(f"{line}\n" for line in lines)


def _check_extra(extra_pip: object) -> list[tuple[Requirement, str]]:
    if isinstance(extra_pip, str) or not isinstance(extra_pip, Sequence):
        raise InvalidParameter(
            "The 'extra_pip' parameter must be a list of requirement lines such as "
            f"['pandas>=2']. Got {type(extra_pip).__name__} instead."
        )
    if len(extra_pip) > MAX_EXTRA_PIP:
        raise InvalidParameter(
            f"The 'extra_pip' parameter holds {len(extra_pip)} lines; at most {MAX_EXTRA_PIP}."
        )
    parsed = []
    for line in extra_pip:
        if not isinstance(line, str) or not line.strip() or len(line) > _MAX_LINE:
            raise InvalidParameter(
                "Each line of 'extra_pip' must be a non-empty requirement of at most "
                f"{_MAX_LINE} characters (e.g. 'pandas>=2'). Got {str(line)[:80]!r} instead."
            )
        text = line.strip()
        try:
            requirement = Requirement(text)
        except InvalidRequirement as exc:
            raise InvalidParameter(
                f"{text[:80]!r} in 'extra_pip' is not a pip requirement (PEP 508, e.g. "
                f"'pandas>=2'): {exc}"
            ) from None
        parsed.append((requirement, str(requirement)))
    return parsed


def _object_modules(model: object) -> list[str]:
    """Top-level modules of the object's classes and of its attributes' classes."""
    types: list[type] = list(type(model).__mro__)
    attributes = getattr(model, "__dict__", None)
    if isinstance(attributes, dict):
        for value in list(attributes.values())[:_MAX_ATTRIBUTES]:
            types.extend(type(value).__mro__)
    modules: list[str] = []
    for cls in types:
        top = str(getattr(cls, "__module__", "") or "").partition(".")[0]
        if (
            top
            and top not in _NOT_PACKAGES
            and top not in sys.stdlib_module_names
            and top not in modules
        ):
            modules.append(top)
    return modules


def _distributions(modules: Iterable[str]) -> list[importlib.metadata.Distribution]:
    """The installed distributions providing ``modules`` (modules with none are skipped)."""
    found: list[importlib.metadata.Distribution] = []
    missing: list[str] = []
    for module in dict.fromkeys(modules):
        try:  # the usual case: the distribution is named like its module
            found.append(importlib.metadata.distribution(_DISTRIBUTION_OF.get(module, module)))
        except importlib.metadata.PackageNotFoundError:
            missing.append(module)
    if missing:  # sklearn → scikit-learn, xgboost → xgboost-cpu: scan once
        providers = importlib.metadata.packages_distributions()
        for module in missing:
            for name in providers.get(module, ())[:1]:
                found.append(importlib.metadata.distribution(name))
    return found
