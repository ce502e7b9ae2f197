"""What a schema inferred from one version may promise about the next ones.

A schema inferred from a sample must accept further samples of the same
distribution. Observed extremes cannot be used as limits: of ``n + m`` values
drawn alike, the largest lies among the ``m`` new ones with probability
``m / (n + m)``, so a pure ``[min, max]`` range fails half of all deliveries as
large as the first version. The rules here widen, or withhold, each inferred
rule so that a delivery from the same distribution fails it rarely.

**Numeric ranges.** Each side's tail is extrapolated from the profile's
quantiles, assuming a generalised-Pareto-like tail beyond the 75th percentile:
the 75th, 95th and 99th percentiles are exceeded with probabilities 1/4, 1/20
and 1/100, a factor of 5 apart, and in such a tail every further factor of 5 in
rarity adds the previous gap times ``r = (q99 - q95) / (q95 - q75)``. The bound
is placed where the per-row exceedance probability reaches
:data:`ROW_EXCEEDANCE` (``5e-9``): a delivery of up to :data:`DESIGN_ROWS`
(1,000,000) rows from the same distribution then fails either side with
probability at most :data:`FALSE_ALARM_RATE` (1 %). To stay on the safe side:

* tails lighter than exponential (``r < 1``: normal, uniform) are extrapolated
  as exponential (``r = 1``), which overstates them;
* the gap ``q99 - q95`` is at least ``ln 5 * std / 4`` (an exponential tail of
  scale ``std / 4``) and, for whole-number columns, at least 1;
* on a skewed side (``q99 - q50 > 2 (q50 - q01)``: log-normal, exponential,
  Pareto, counts) the tail is taken one standard error heavier than estimated,
  ``r * exp(8 / sqrt(n))`` (the sampling error of ``log r`` is about
  ``8 / sqrt(n)``), at most ``r = 5`` (tail index 1); on other sides the
  estimated tail index ``log(r) / log(5)`` is shrunk towards 0 by
  ``n / (n + 1000)``, so that noise in a small sample's quantiles does not turn
  a normal column's range into no range;
* a side whose widening would exceed 100 times ``q99 - q01`` gets no bound (a
  tail too heavy, or a sample too small, to bound usefully);
* the observed minimum and maximum are always inside the range;
* a column never seen negative keeps 0 as its lower bound instead of a
  negative one when its lower tail is lighter than exponential and, extrapolated
  as such (two standard errors heavier than estimated), ends at or above 0
  (ages, bounded scores): a sign flip is then caught. In seeded trials, normal
  columns 3 to 6 standard deviations above zero, sampled without negatives,
  still failed under 1 % of deliveries.

A whole-number column spanning at most 20 values, each seen at least
:data:`CATEGORY_MIN_COUNT` (5) times, is a set of values like a category and
keeps its observed ``[min, max]`` (labels, ratings; see **Allowed sets**
below) -- unless its counts fall off towards an end as a tail does: continuing
that fall geometrically, the value past the end would be expected
``edge**2 / neighbour`` times, and fewer than 5 expected means it may just not
have shown up yet (45 zeros and 5 ones: 0.6 twos expected).

Measured on independent samples (see ``tests/data/test_data_infer.py``), the
false-alarm rate stays under 1 % for normal, uniform, exponential, log-normal
and Poisson-count data from 50 to 10,000 rows, also for deliveries 20 times
larger than the version the schema was inferred from. Three quantiles cannot
see everything beyond the 99th percentile: symmetric power-law tails (Student's
t with 3 to 5 degrees of freedom) still fail up to 14 % of same-size deliveries;
widen such ranges by hand. The price is width: a normal column
gets about ``mean ± 6`` to ``8`` standard deviations, so ranges catch gross
errors (a unit changed by x10, a sign flip, a mean moved by ten standard
deviations, a wrong column); subtler shifts are for ``loopml data diff`` (PSI)
and monitoring. A constant column gets no range (no spread to scale a
tolerance by), nor does one with infinite values or fewer than
:data:`RANGE_MIN_ROWS` (20) values (whose 1st and 99th percentiles are just
their extremes).

**Missing values.** A column is inferred not-nullable only when at least
:data:`NOT_NULL_MIN_ROWS` (100) of its values were seen and none was missing:
by the rule of three, that bounds its missing rate below 3 % with 95 %
confidence, while in a smaller sample a column missing one value in ten looks
complete too often (0.5 % of 50-row samples).

**Keys.** A column that looks like a row identifier -- at least
:data:`KEY_MIN_ROWS` values, all distinct, and either strings or whole numbers
spread no wider than twice their count (sequence ids) -- gets neither a range
nor an allowed set: new deliveries bring new ids. Declare it with ``key=`` to
check uniqueness instead (:func:`key_candidates` names such columns).

**Allowed sets.** A categorical column gets its values as ``allowed`` only when
every value's count is known (at most 20 values, the profile's ``top_k``) and
the rarest value was seen at least :data:`CATEGORY_MIN_COUNT` (5) times. A
value as rare as the rarest one observed is absent from a sample with
probability at most ``e**-5`` (0.7 %); a value seen once or twice says that
values of that rarity exist, and a later delivery will likely bring one never
seen (the Good-Turing estimate of the unseen share is ``singletons / n``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from loopml.data._profile import ColumnProfile

__all__ = [
    "CATEGORY_MIN_COUNT",
    "DESIGN_ROWS",
    "FALSE_ALARM_RATE",
    "KEY_MIN_ROWS",
    "NOT_NULL_MIN_ROWS",
    "RANGE_MIN_ROWS",
    "ROW_EXCEEDANCE",
    "allowed_values",
    "is_key_like",
    "key_candidates",
    "numeric_range",
]

#: The chance that a delivery from the same distribution fails an inferred range ...
FALSE_ALARM_RATE = 0.01
#: ... for deliveries of up to this many rows.
DESIGN_ROWS = 1_000_000
#: Per row and per side: the tail probability at which a range is bounded.
ROW_EXCEEDANCE = FALSE_ALARM_RATE / (2 * DESIGN_ROWS)
#: Columns with fewer values get no inferred range.
RANGE_MIN_ROWS = 20
#: Columns with fewer values are inferred nullable even when none was missing.
NOT_NULL_MIN_ROWS = 100
#: Columns with fewer values are never taken for keys.
KEY_MIN_ROWS = 10
#: The rarest category must have been seen this often for the set to be enumerated.
CATEGORY_MIN_COUNT = 5

# How many factors of 5 in rarity lie between the 99th percentile and ROW_EXCEEDANCE.
_STEPS = math.log(0.01 / ROW_EXCEEDANCE) / math.log(5)
_BINS = 20
_SKEWED = 2.0
_RATIO_ERROR = 8.0
_MAX_RATIO = 5.0
_SHAPE_PRIOR_ROWS = 1000
_MAX_MARGIN = 100.0


def numeric_range(column: ColumnProfile) -> tuple[float | None, float | None] | None:
    """The inferred ``(min, max)`` of a numeric column; ``None`` for no bound.

    Args:
        column: The column's profile.

    Returns:
        Inclusive bounds widened as the module docstring explains (whole numbers
        for integral columns; ``None`` for a side whose tail is too heavy to
        bound), or ``None`` for non-numeric, key-like, constant, infinite-valued
        or small (under :data:`RANGE_MIN_ROWS` values) columns.
    """
    q = column.quantiles
    low, high, std = column.min, column.max, column.std
    if (
        column.kind != "numeric"
        or q is None
        or column.count < RANGE_MIN_ROWS
        or not _finite(low)
        or not _finite(high)
        or not isinstance(std, float)
        or not low < high  # type: ignore[operator]
        or is_key_like(column)
    ):
        return None
    assert isinstance(low, float) and isinstance(high, float)
    if _few_values_all_common(column):
        return low, high
    tail = _Tail(std=std, resolution=1.0 if column.integral else 0.0, n=column.count)
    upper = tail.bound(high, q["0.99"], q["0.95"], q["0.75"], q["0.5"], q["0.01"])
    # The lower tail, mirrored: negate, extrapolate upwards, negate back.
    lower = tail.bound(-low, -q["0.01"], -q["0.05"], -q["0.25"], -q["0.5"], -q["0.99"])
    lower = None if lower is None else -lower
    if low >= 0 and (lower is None or lower < 0) and _never_negative(column, q):
        lower = 0.0
    if column.integral:
        lower = None if lower is None else float(math.floor(lower))
        upper = None if upper is None else float(math.ceil(upper))
    return None if lower is None and upper is None else (lower, upper)


def _few_values_all_common(column: ColumnProfile) -> bool:
    """Whether a whole-number column spans at most 20 values, each seen often enough.

    Over such a span each of the histogram's 20 equal-width bins holds at most
    one integer, so the bins' counts are the values' counts.
    """
    histogram = column.histogram
    if not column.integral or histogram is None or len(histogram.counts) != _BINS:
        return False
    if histogram.edges[-1] - histogram.edges[0] > _BINS - 1:
        return False
    seen = [n for n in histogram.counts if n]
    if len(seen) != column.distinct or min(seen) < CATEGORY_MIN_COUNT:
        return False
    # Counts falling off geometrically towards an end would go on past it: the next
    # value would be expected edge**2 / neighbour times. The set is closed only if
    # that many (at least 5) were expected and none seen; rare counts (45 zeros,
    # 5 ones: 0.6 twos expected) are a tail, labels (1700/300: 53) and ratings not.
    return len(seen) < 2 or (
        seen[0] ** 2 >= CATEGORY_MIN_COUNT * seen[1]
        and seen[-1] ** 2 >= CATEGORY_MIN_COUNT * seen[-2]
    )


def _never_negative(column: ColumnProfile, q: Mapping[str, float]) -> bool:
    """Whether a column seen without negative values has a lower tail that ends above 0.

    A lower tail lighter than exponential (``r < 1``, taken two standard errors
    heavier than estimated) ends at ``q01 - gap / (1 - r)``; when that end is
    not below zero, zero is kept as the bound instead of a negative one.
    """
    resolution = 1.0 if column.integral else 0.0
    gap, body = max(q["0.05"] - q["0.01"], resolution), q["0.25"] - q["0.05"]
    if body <= 0:
        return False
    ratio = gap / body * math.exp(2 * _RATIO_ERROR / math.sqrt(column.count))
    return ratio < 1 and q["0.01"] - gap / (1 - ratio) >= 0


@dataclass(frozen=True)
class _Tail:
    std: float
    resolution: float
    n: int

    def bound(
        self, extreme: float, q99: float, q95: float, q75: float, q50: float, q01: float
    ) -> float | None:
        """Where the upper tail's exceedance probability reaches ``ROW_EXCEEDANCE``."""
        gap = max(q99 - q95, math.log(5) * self.std / 4, self.resolution)
        body = q95 - q75
        ratio = max(gap / body, 1.0) if body > 0 else 1.0
        below = q50 - q01
        if below <= 0 or q99 - q50 > _SKEWED * below:
            # One standard error heavier than estimated (capped at tail index 1).
            ratio = min(_MAX_RATIO, ratio * math.exp(_RATIO_ERROR / math.sqrt(self.n)))
        else:
            ratio = ratio ** (self.n / (self.n + _SHAPE_PRIOR_ROWS))
        factor = _STEPS if ratio == 1.0 else (ratio**_STEPS - 1) / (ratio - 1)
        margin = gap * factor
        if margin > _MAX_MARGIN * max(q99 - q01, gap):
            return None  # too heavy a tail to bound usefully
        return max(extreme, _round_up(q99 + margin, margin))


def _round_up(value: float, margin: float) -> float:
    """``value`` rounded up to 3 significant digits of ``margin`` (readable bounds)."""
    if not math.isfinite(value) or margin <= 0 or not math.isfinite(margin):
        return value
    quantum = 10.0 ** (math.floor(math.log10(margin)) - 2)
    return math.ceil(value / quantum) * quantum


def is_key_like(column: ColumnProfile) -> bool:
    """Whether a column looks like a row identifier (see the module docstring).

    Args:
        column: The column's profile.

    Returns:
        ``True`` for at least :data:`KEY_MIN_ROWS` distinct strings, or distinct
        whole numbers spread over at most twice their count.
    """
    if column.count < KEY_MIN_ROWS or not column.distinct_exact:
        return False
    if column.distinct != column.count:
        return False
    if column.kind in ("categorical", "text"):
        return True
    if column.kind == "numeric" and column.integral:
        low, high = column.min, column.max
        return _finite(low) and _finite(high) and high - low + 1 <= 2 * column.count  # type: ignore[operator]
    return False


def key_candidates(columns: Mapping[str, ColumnProfile]) -> tuple[str, ...]:
    """The names of the columns that look like row identifiers, in order."""
    return tuple(name for name, column in columns.items() if is_key_like(column))


def allowed_values(column: ColumnProfile) -> tuple[str, ...] | None:
    """The inferred allowed set of a categorical column, or ``None`` for no set.

    Args:
        column: The column's profile.

    Returns:
        Every value, when all their counts are known and the rarest was seen at
        least :data:`CATEGORY_MIN_COUNT` times; else ``None``.
    """
    if column.kind != "categorical" or column.categories is None or column.top_k is None:
        return None
    if is_key_like(column) or len(column.top_k) < len(column.categories):
        return None
    if min((n for _, n in column.top_k), default=0) < CATEGORY_MIN_COUNT:
        return None
    return tuple(column.categories)


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
