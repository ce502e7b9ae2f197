"""Which types a skops file may restore: a fixed allow-list, never the file's own list.

A skops file describes every object it holds by type name, and loading builds
each object from its named type: a file that names ``posix.system`` as the
constructor of a "reduce" entry runs a shell command. skops refuses every type
outside its own defaults unless the caller lists it as trusted, so what loopml
passes as ``trusted`` decides what a stored file can run.

loopml trusts, beyond skops' defaults (scikit-learn estimators, NumPy and SciPy
arrays, NumPy ufuncs, builtin containers):

- scikit-learn *classes* named under ``sklearn.`` (trees, ``TreePredictor``,
  ``KDTree``, distance metrics, losses, kernels, optimisers, calibrators …):
  restoring one builds an object of a class scikit-learn itself defines, which
  runs no code beyond scikit-learn's own ``__init__``/``__setstate__``. A name
  must resolve to a class defined in scikit-learn; classes from its test
  helpers, vendored libraries, dataset fetchers and callbacks are excluded;
- the few *functions* fitted estimators really keep (:data:`SAFE_FUNCTIONS`:
  ``check_array`` inside ``HistGradientBoosting``, the univariate scores of
  ``SelectKBest`` …). A function reference is never trusted by prefix: an
  estimator such as ``FunctionTransformer`` calls whatever function it holds;
- exact NumPy, SciPy and standard-library types (:data:`SAFE_TYPES`), such as
  ``functools.partial`` (its function and arguments are checked on their own).

Anything else must be listed by the user, per call (``trusted_types=``) or for
the process (``LOOPML_TRUSTED_TYPES``); the error names the refused types and
both ways.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from loopml import settings
from loopml.errors import InvalidParameter, UntrustedTypesError

__all__ = ["SAFE_FUNCTIONS", "SAFE_TYPES", "is_safe_type", "load_skops", "refused_types"]

SAFE_FUNCTIONS = frozenset(
    {
        # HistGradientBoosting keeps functools.partial(check_array, ...).
        "sklearn.utils.validation.check_array",
        # SelectKBest / SelectPercentile / GenericUnivariateSelect keep their score function.
        "sklearn.feature_selection._univariate_selection.chi2",
        "sklearn.feature_selection._univariate_selection.f_classif",
        "sklearn.feature_selection._univariate_selection.f_oneway",
        "sklearn.feature_selection._univariate_selection.f_regression",
        "sklearn.feature_selection._univariate_selection.r_regression",
        "sklearn.feature_selection._mutual_info.mutual_info_classif",
        "sklearn.feature_selection._mutual_info.mutual_info_regression",
        # SplineTransformer's BSpline keeps SciPy's array namespace function.
        "scipy._lib.array_api_compat.numpy._aliases.asarray",
    }
)
"""Functions a stored estimator may reference: pure numeric functions only."""

SAFE_TYPES = frozenset(
    {
        "functools.partial",  # skops checks the wrapped function and arguments separately
        "numpy.dtype",
        "scipy.interpolate._bsplines.BSpline",
    }
)
"""Exact non-scikit-learn types a stored estimator may be made of."""

_EXCLUDED_PARTS = frozenset(
    {"tests", "conftest", "_testing", "_mocking", "externals", "datasets", "callback"}
)


def is_safe_type(name: str) -> bool:
    """Whether loopml trusts the type or function ``name`` (``module.qualname``) on its own.

    Args:
        name: a type name as :func:`skops.io.get_untrusted_types` reports it.

    Returns:
        True for :data:`SAFE_FUNCTIONS`, :data:`SAFE_TYPES` and scikit-learn classes
        (see the module docstring); False for anything else, including names that
        do not resolve.
    """
    if name in SAFE_FUNCTIONS or name in SAFE_TYPES:
        return True
    module_name, _, class_name = name.rpartition(".")
    parts = module_name.split(".")
    if parts[0] != "sklearn" or not class_name or _EXCLUDED_PARTS.intersection(parts):
        return False
    try:
        found = getattr(importlib.import_module(module_name), class_name)
    except Exception:  # a module that does not import here is not one we trust
        return False
    defined_in = getattr(found, "__module__", "") or ""
    return isinstance(found, type) and defined_in.split(".")[0] == "sklearn"


def refused_types(reported: Iterable[str], trusted_types: Iterable[str] = ()) -> list[str]:
    """The names of ``reported`` that neither loopml nor the caller trusts, sorted.

    Raises:
        InvalidParameter: ``trusted_types`` is a string rather than a list of names.
    """
    if isinstance(trusted_types, str):
        raise InvalidParameter(
            "The 'trusted_types' parameter must be a list of type names; "
            f"got the string {trusted_types!r}."
        )
    extra = set(trusted_types) | set(settings.get("LOOPML_TRUSTED_TYPES"))
    return sorted({t for t in reported if t not in extra and not is_safe_type(t)})


def load_skops(path: Path, what: str, trusted_types: Iterable[str] = ()) -> Any:
    """Load the skops file ``path``, trusting only the allow-list and ``trusted_types``.

    Args:
        path: the ``.skops`` file.
        what: the stored thing, for the error (``"model credit/3"``).
        trusted_types: more type names the caller trusts.

    Returns:
        The restored object.

    Raises:
        UntrustedTypesError: the file names types outside the allow-list; nothing
            was constructed.
    """
    import skops.io

    reported = skops.io.get_untrusted_types(file=path)
    refused = refused_types(reported, trusted_types)
    if refused:
        names = ", ".join(refused)
        raise UntrustedTypesError(
            f"Refusing to load {what}: its skops file names types loopml does not trust "
            f"({names}). Loading would construct them, which can run code. If you trust "
            f"them, pass trusted_types=[...] naming them, or set LOOPML_TRUSTED_TYPES="
            f"{','.join(refused)}.",
            refused,
        )
    return skops.io.load(path, trusted=list(reported))
