"""A seeded generator of no-shift controls and known shifts, for tests and benchmarks.

:func:`make_frame` draws 20 numeric columns (normals of several scales, skewed
lognormal/exponential/gamma columns, integer counts) and 5 categorical ones (mixes of
3 to 50 categories), and applies named shifts to fixed columns (:data:`SHIFTS`):

========================= ========= ==================================================
shift                     column    what changes
========================= ========= ==================================================
``mean``                  num_00    mean + 0.5 sd
``variance``              num_01    sd x 2, same mean
``shape``                 num_02    bimodal (two normals at ±0.9 sd, sd 0.44): same mean
                                    and variance
``missing``               num_03    0 % → 25 % missing (at random)
``irrelevant``            num_04    mean + 0.02 sd (practically irrelevant)
``category_mix``          cat_0     shares 50/30/20 % → 30/40/30 %
``unseen_category``       cat_1     10 % of rows in a category the reference never had
``disappearing_category`` cat_2     the 20 % category disappears (its rows spread over
                                    the others)
========================= ========= ==================================================
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from loopml.errors import InvalidParameter

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["MEANINGFUL_SHIFTS", "SHIFTS", "make_frame"]

#: Each shift's name and the column it changes.
SHIFTS: dict[str, str] = {
    "mean": "num_00",
    "variance": "num_01",
    "shape": "num_02",
    "missing": "num_03",
    "irrelevant": "num_04",
    "category_mix": "cat_0",
    "unseen_category": "cat_1",
    "disappearing_category": "cat_2",
}

#: The shifts a drift check must detect (all but ``irrelevant``).
MEANINGFUL_SHIFTS: tuple[str, ...] = tuple(s for s in SHIFTS if s != "irrelevant")

_SHIFT_OF: dict[str, str] = {column: shift for shift, column in SHIFTS.items()}

_CATEGORIES: dict[str, tuple[list[str], list[float]]] = {
    "cat_0": (["red", "green", "blue"], [0.5, 0.3, 0.2]),
    "cat_1": (["a", "b", "c", "d", "e"], [0.3, 0.25, 0.2, 0.15, 0.1]),
    "cat_2": (["north", "south", "east", "west"], [0.4, 0.3, 0.2, 0.1]),
    "cat_3": ([f"k{i:02d}" for i in range(50)], list(1.0 / np.arange(1, 51))),
    "cat_4": (["yes", "no"], [0.7, 0.3]),
}


def make_frame(rows: int, seed: int, *, shifts: Iterable[str] = ()) -> pd.DataFrame:
    """Draw a frame of 20 numeric and 5 categorical columns, with the shifts applied.

    Args:
        rows: Number of rows (>= 1).
        seed: Seeds everything drawn; the same seed gives the same frame.
        shifts: Names from :data:`SHIFTS` to apply (none: a no-shift control).

    Returns:
        A DataFrame with columns ``num_00`` … ``num_19`` (float64, the integer columns
        int64) and ``cat_0`` … ``cat_4`` (pandas categoricals).

    Raises:
        InvalidParameter: ``rows`` < 1 or an unknown shift.

    Example:
        >>> make_frame(5, seed=0).shape
        (5, 25)
    """
    import pandas as pd

    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise InvalidParameter(
            f"The 'rows' parameter of make_frame must be an int >= 1. Got {rows!r} instead."
        )
    wanted = set(shifts)
    unknown = sorted(wanted - set(SHIFTS))
    if unknown:
        raise InvalidParameter(
            f"The 'shifts' parameter of make_frame must name shifts from {sorted(SHIFTS)}. "
            f"Got {unknown[0]!r} instead."
        )
    rng = np.random.default_rng(seed)
    cols: dict[str, object] = {}
    normals = [(0.0, 1.0), (10.0, 2.0), (-3.0, 0.5), (100.0, 15.0), (0.0, 1.0)]
    normals += [(5.0, 3.0), (-50.0, 10.0), (0.001, 0.0005), (1e6, 1e5), (2.0, 0.1)]
    for i, (mu, sd) in enumerate(normals):
        name = f"num_{i:02d}"
        cols[name] = _normal(rng, rows, mu, sd, _SHIFT_OF.get(name), wanted)
    cols["num_10"] = rng.lognormal(0.0, 0.5, rows)
    cols["num_11"] = rng.lognormal(2.0, 1.0, rows)
    cols["num_12"] = rng.exponential(3.0, rows)
    cols["num_13"] = rng.gamma(2.0, 2.0, rows)
    cols["num_14"] = rng.poisson(3.0, rows).astype(np.int64)
    cols["num_15"] = rng.poisson(10.0, rows).astype(np.int64)
    cols["num_16"] = rng.poisson(50.0, rows).astype(np.int64)
    cols["num_17"] = rng.binomial(20, 0.3, rows).astype(np.int64)
    cols["num_18"] = rng.uniform(-1.0, 1.0, rows)
    cols["num_19"] = rng.standard_t(5, rows)
    for name, (cats, weights) in _CATEGORIES.items():
        cols[name] = _categorical(rng, rows, name, cats, weights, wanted)
    return pd.DataFrame(cols)


def _normal(
    rng: np.random.Generator, rows: int, mu: float, sd: float, shift: str | None, wanted: set[str]
) -> npt.NDArray[np.float64]:
    z = rng.standard_normal(rows)
    if shift in wanted:
        if shift == "mean":
            z += 0.5
        elif shift == "irrelevant":
            z += 0.02
        elif shift == "variance":
            z *= 2.0
        elif shift == "shape":
            z = np.where(rng.random(rows) < 0.5, -0.9, 0.9) + math.sqrt(1 - 0.81) * z
    x = mu + sd * z
    if shift == "missing" and shift in wanted:
        x[rng.random(rows) < 0.25] = np.nan
    return x


def _categorical(
    rng: np.random.Generator,
    rows: int,
    name: str,
    cats: list[str],
    weights: list[float],
    wanted: set[str],
) -> object:
    import pandas as pd

    shift = _SHIFT_OF.get(name)
    p = np.asarray(weights) / np.sum(weights)
    labels = list(cats)
    if shift in wanted:
        if shift == "category_mix":
            p = np.array([0.3, 0.4, 0.3])
        elif shift == "disappearing_category":
            p = np.where(np.arange(p.size) == 2, 0.0, p)
            p /= p.sum()
        elif shift == "unseen_category":
            labels.append("new")
            p = np.append(p * 0.9, 0.1)
    codes = rng.choice(len(labels), size=rows, p=p)
    return pd.Categorical.from_codes(codes, categories=pd.Index(labels))
