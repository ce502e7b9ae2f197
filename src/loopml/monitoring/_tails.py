"""The tail probabilities of the drift tests, without importing ``scipy.stats``.

``scipy.stats`` costs about 47 MiB resident and 1.5 s to import, more than the whole
drift path needs; these functions call the ``scipy.special`` ufuncs that
``scipy.stats``'s ``norm``, ``beta``, ``binom`` and ``ncx2`` call, with the same
boundary rules, so the values are identical (``tests/monitoring/test_tails.py``
compares them with ``scipy.stats`` bit for bit).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["beta_ppf", "binom_sf", "ncx2_sf", "norm_sf"]


def norm_sf(x: float) -> float:
    """``scipy.stats.norm.sf(x)``."""
    from scipy.special import ndtr

    return float(ndtr(-x))


def beta_ppf(q: float, a: float, b: float) -> float:
    """``scipy.stats.beta.ppf(q, a, b)`` for ``0 < q < 1`` and ``a, b > 0``."""
    from scipy.special import betaincinv

    return float(betaincinv(a, b, q))


def binom_sf(k: int, n: int, p: float) -> float:
    """``scipy.stats.binom.sf(k, n, p)`` for integers ``0 <= k < n``."""
    return float(_ufuncs()[0](k, n, p))


def ncx2_sf(x: float, df: float, nc: float) -> float:
    """``scipy.stats.ncx2.sf(x, df, nc)`` for ``df > 0`` and ``nc >= 0``."""
    if x <= 0.0:  # the support starts at 0 (where the Boost ufunc gives -0.0)
        return 1.0
    if nc == 0.0:  # scipy.stats' ncx2 is the central chi-square there
        from scipy.special import chdtrc

        return float(chdtrc(df, x))
    return float(_ufuncs()[1](x, df, nc))


def _ufuncs() -> tuple[Callable[..., Any], Callable[..., Any]]:
    # scipy.special holds the Boost ufuncs that scipy.stats' binom and ncx2 call since
    # scipy moved them out of scipy.stats._boost; with an older scipy the distributions
    # give the same values, only through the heavier import.
    try:
        from scipy.special._ufuncs import _binom_sf, _ncx2_sf
    except ImportError:
        from scipy.stats import binom, ncx2

        return binom.sf, ncx2.sf
    return _binom_sf, _ncx2_sf
