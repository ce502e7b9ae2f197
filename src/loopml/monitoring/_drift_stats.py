"""Drift statistics between a reference and a current column sketch.

Each statistic returns an :class:`Effect`: an effect size, the tolerance ``δ`` it is
judged against, a p-value for H0 "the true effect is at most δ" (a *minimum-effect*
test: at a million rows an irrelevant shift is not significant, because it is below
δ; at a hundred rows a large plug-in distance is not significant, because the
evidence is weak), an interval and JSON-able plot detail. The decision (effect above δ
*and* Benjamini-Hochberg-adjusted p at most the FDR) is made in ``_drift``.

Methods and defaults (``DEFAULT_TOLERANCES``):

* ``ks`` (numeric default, δ = 0.05): the two-sample Kolmogorov-Smirnov distance D at
  the sketch's bin edges. That is a lower bound of the exact D, which exceeds it by at
  most the largest bin mass (reported as the interval's upper end; with 0.02-sd bins
  about 0.008 for a normal column). Using the lower bound keeps the sketch from ever
  alerting where the exact test would not. Evidence: the DKW inequality with
  Massart's constant, on both samples: ``P(D_obs - D_true > t) <= 4 exp(-2 t² nm /
  (√n + √m)²)``, so with ``t = D - δ`` that bound is a valid p-value for "D_true ≤ δ"
  at any sample size, ties included. δ = 0.05 is 5 % of the population moved across
  some threshold: a 0.02-sd mean shift has D ≈ 0.008, a 0.5-sd shift D ≈ 0.2.
* ``chi2`` (categorical default, δ = 0.1; numeric over 20 reference-quantile bins):
  effect ``V = sqrt(½ Σ (p - q)² / (p + q))``, Cramér's V of the two-row table *at equal
  sample sizes* (Cohen's w). Pearson's V depends on the ratio of the two sample sizes
  (a current window 1 % of the reference would shrink it ten-fold); this one does not.
  Evidence: the minimum-effect test of "V ≤ δ": Pearson's χ² against the noncentral
  chi-square with ``λ = 4 δ² nm / (n + m)`` (``N δ²`` for equal sizes). Cells whose
  expected count is below 5 on either side are pooled first. δ = 0.1 is Cohen's
  "small" effect.
* ``jensen_shannon`` (δ = 0.1, the distance in nats, as ``scipy`` and Evidently),
  ``hellinger`` (δ = 0.1), ``psi`` (δ = 0.1 on 10 bins, shares floored at 1e-4 as
  Evidently does) on 20 reference-quantile bins (or the categories), and
  ``wasserstein`` (δ = 0.1, the 1-Wasserstein distance in reference standard
  deviations, on the sketch's fine bins, finite values only). Plug-in divergences are
  biased upward at small n, so the effect reported is bias-corrected with a seeded
  multinomial bootstrap of both sides (B = 500), and the p-value is the normal tail of
  ``(effect - δ) / bootstrap SE``: the share of replicates below δ, as a smooth
  function, because 500 replicates cannot give the p-values below 1/500 that a
  correction across 50 checks needs. The interval is the basic bootstrap interval.
* ``missing_rate`` (δ = 0.05): ``|current missing share - reference missing share|``,
  one-sided z-test of the difference beyond δ (shares smoothed by ½ a row in the
  standard error, so that 0 % on one side is not certainty). 0 % → 25 % is an effect
  of 0.25.
* ``unseen_share`` (δ = 0.01): the share of current non-missing rows in categories the
  reference never had; exact binomial test of "share ≤ δ", Clopper-Pearson interval.
  Only when the reference's counts are exact (not capped); when the current sketch
  is capped, its uncounted ``other`` rows are not counted as unseen (a lower bound).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from loopml.monitoring._sketch import Z_EDGES, ColumnSketch
from loopml.monitoring._tails import beta_ppf, binom_sf, ncx2_sf, norm_sf

__all__ = [
    "CATEGORICAL_METHODS",
    "DEFAULT_TOLERANCES",
    "DRIFT_METHODS",
    "MIN_VALUES",
    "NUMERIC_METHODS",
    "Effect",
    "compare",
    "missing_rate",
    "unseen_share",
]

F64 = npt.NDArray[np.float64]

#: Drift methods for numeric columns (the first is the default).
NUMERIC_METHODS: tuple[str, ...] = (
    "ks",
    "chi2",
    "jensen_shannon",
    "wasserstein",
    "psi",
    "hellinger",
)
#: Drift methods for categorical columns (the first is the default).
CATEGORICAL_METHODS: tuple[str, ...] = ("chi2", "jensen_shannon", "psi", "hellinger")
#: Every drift method name.
DRIFT_METHODS: tuple[str, ...] = NUMERIC_METHODS

#: The tolerance δ of each method (see the module docstring for why).
DEFAULT_TOLERANCES: dict[str, float] = {
    "ks": 0.05,
    "chi2": 0.1,
    "jensen_shannon": 0.1,
    "wasserstein": 0.1,
    "psi": 0.1,
    "hellinger": 0.1,
    "missing_rate": 0.05,
    "unseen_share": 0.01,
}

#: Fewest non-missing values per side for a drift check, rows per side for
#: ``missing_rate`` (below, the check's status is ``no_data``).
MIN_VALUES = 30

_PLOT_BINS = 20
_PSI_BINS = 10
_PSI_FLOOR = 1e-4
_BOOTSTRAP = 500
_SPARSE = 5.0
_PLOT_CATEGORIES = 20


@dataclass(frozen=True)
class Effect:
    """One statistic's outcome on one column.

    Attributes:
        method: The method's stable name.
        statistic: The effect size.
        tolerance: The δ it is judged against.
        p_value: The raw p-value of H0 "the true effect is at most δ".
        interval: A 95 % interval of the effect.
        detail: JSON-able plot detail (``CheckResult.detail`` conventions).
    """

    method: str
    statistic: float
    tolerance: float
    p_value: float
    interval: tuple[float, float]
    detail: dict[str, Any] = field(default_factory=dict)


def compare(
    method: str,
    reference: ColumnSketch,
    current: ColumnSketch,
    *,
    tolerance: float | None = None,
    seed: int = 0,
) -> Effect:
    """Compare the non-missing values of two sketches of the same column.

    Args:
        method: One of :data:`NUMERIC_METHODS` (numeric columns) or
            :data:`CATEGORICAL_METHODS` (categorical columns).
        reference: The reference sketch.
        current: The current sketch, with the reference's layout.
        tolerance: δ; default ``DEFAULT_TOLERANCES[method]``.
        seed: Seeds the bootstrap of the bootstrap methods.

    Returns:
        The :class:`Effect`; callers check :data:`MIN_VALUES` first.
    """
    tol = DEFAULT_TOLERANCES[method] if tolerance is None else tolerance
    if reference.kind == "numeric":
        a, b = _numeric_counts(reference), _numeric_counts(current)
        plot = _numeric_plot(reference, current, a, b)
    else:
        a, b, names = _categorical_counts(reference, current)
        plot = _categorical_plot(a, b, names)
    rng = np.random.default_rng(seed)
    if method == "ks":
        eff = _ks(a, b, tol)
    elif method == "wasserstein":
        # The finite fine bins only (infinities have no distance); z is in reference sds.
        eff = _bootstrap(method, _wasserstein, a[1:-1], b[1:-1], tol, rng)
    else:
        if reference.kind == "numeric":
            groups = _quantile_groups(a, _PSI_BINS if method == "psi" else _PLOT_BINS)
            a, b = np.add.reduceat(a, groups), np.add.reduceat(b, groups)
        if method == "chi2":
            eff = _chi2(a, b, tol)
        else:
            eff = _bootstrap(method, _DIVERGENCES[method], a, b, tol, rng)
    detail = plot | eff.detail | _sides(reference, current)
    return Effect(method, eff.statistic, tol, eff.p_value, eff.interval, detail)


def missing_rate(reference: ColumnSketch, current: ColumnSketch, *, tolerance: float) -> Effect:
    """Difference of the missing shares (null and NaN) of the two sides."""
    n, m = reference.rows, current.rows
    p1, p2 = reference.missing / n, current.missing / m
    d = abs(p2 - p1)
    s1, s2 = (reference.missing + 0.5) / (n + 1), (current.missing + 0.5) / (m + 1)
    se = math.sqrt(s1 * (1 - s1) / n + s2 * (1 - s2) / m)
    p = norm_sf((d - tolerance) / se)
    detail = {"reference": p1, "current": p2, "raw_p_value": p}
    return Effect("missing_rate", d, tolerance, p, (max(0.0, d - 1.96 * se), d + 1.96 * se), detail)


def unseen_share(reference: ColumnSketch, current: ColumnSketch, *, tolerance: float) -> Effect:
    """Share of current non-missing rows in categories the reference never had.

    The caller checks that the reference is not capped.
    """
    seen = np.isin(current.hashes, reference.hashes, assume_unique=True)
    x, m = int(current.counts[~seen].sum()), current.count
    share = x / m
    p = binom_sf(x - 1, m, tolerance) if x > 0 else 1.0
    lo = beta_ppf(0.025, x, m - x + 1) if x > 0 else 0.0
    hi = beta_ppf(0.975, x + 1, m - x) if x < m else 1.0
    top = np.argsort(-current.counts[~seen], kind="stable")[:_PLOT_CATEGORIES]
    detail = {
        "reference": 0.0,
        "current": share,
        "raw_p_value": p,
        "unseen": [str(v) for v in current.names[~seen][top]],
    }
    return Effect("unseen_share", share, tolerance, p, (lo, hi), detail)


# --- aligned counts -----------------------------------------------------------------------------


def _numeric_counts(col: ColumnSketch) -> F64:
    """-inf, the fine bins, +inf: the ordered support of the non-missing values."""
    return np.concatenate([[col.neg_inf], col.counts, [col.pos_inf]]).astype(np.float64)


def _categorical_counts(ref: ColumnSketch, cur: ColumnSketch) -> tuple[F64, F64, list[str]]:
    """Both sides' counts over the categories both count exactly, plus ``(other)``."""
    limits = [s.hashes[-1] for s in (ref, cur) if s.capped and s.hashes.size]
    hashes = np.union1d(ref.hashes, cur.hashes)
    if limits:  # above a capped side's threshold, its counts are unknown: pool them
        hashes = hashes[hashes <= min(limits)]
    a, b = np.zeros(hashes.size), np.zeros(hashes.size)
    names = np.empty(hashes.size, dtype=object)
    for side, out in ((ref, a), (cur, b)):
        pos = np.searchsorted(hashes, side.hashes)
        inside = pos < hashes.size
        inside[inside] = hashes[pos[inside]] == side.hashes[inside]
        out[pos[inside]] = side.counts[inside]
        names[pos[inside]] = side.names[inside]
    other_a = ref.count - a.sum()
    other_b = cur.count - b.sum()
    if other_a or other_b:
        return np.append(a, other_a), np.append(b, other_b), [*names.tolist(), "(other)"]
    return a, b, list(names.tolist())


def _quantile_groups(a: F64, k: int) -> npt.NDArray[np.intp]:
    """Start indices of about ``k`` groups of consecutive cells of equal reference mass."""
    cum = np.cumsum(a) / a.sum()
    cuts = np.searchsorted(cum, np.arange(1, k) / k, side="left") + 1
    return np.unique(np.concatenate([[0], cuts[cuts < a.size]])).astype(np.intp)


# --- statistics ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Raw:
    statistic: float
    p_value: float
    interval: tuple[float, float]
    detail: dict[str, Any]


def _ks(a: F64, b: F64, tol: float) -> _Raw:
    n, m = a.sum(), b.sum()
    p, q = a / n, b / m
    d = float(np.abs(np.cumsum(p) - np.cumsum(q)).max())
    # Inside a bin the exact ECDFs can part by at most the bin's mass (not at ±inf).
    upper = d + float(np.maximum(p[1:-1], q[1:-1]).max())
    rate = 2.0 * n * m / (math.sqrt(n) + math.sqrt(m)) ** 2
    t = d - tol
    p_value = 1.0 if t <= 0 else min(1.0, 4.0 * math.exp(-rate * t * t))
    eps = math.sqrt(math.log(4.0 / 0.05) / rate)
    return _Raw(d, p_value, (max(0.0, d - eps), min(1.0, upper + eps)), {"ks_upper": upper})


def _chi2(a: F64, b: F64, tol: float) -> _Raw:
    n, m = a.sum(), b.sum()
    total = a + b
    a, b, total = a[total > 0], b[total > 0], total[total > 0]
    sparse = np.minimum(n, m) * total / (n + m) < _SPARSE
    if sparse.any():
        a = np.append(a[~sparse], a[sparse].sum())
        b = np.append(b[~sparse], b[sparse].sum())
        total = a + b
    df = a.size - 1
    if df < 1:
        return _Raw(0.0, 1.0, (0.0, 0.0), {"df": 0, "chi2": 0.0})
    ea, eb = n * total / (n + m), m * total / (n + m)
    chi2 = float(((a - ea) ** 2 / ea).sum() + ((b - eb) ** 2 / eb).sum())
    p, q = a / n, b / m
    v = math.sqrt(0.5 * float(((p - q) ** 2 / (p + q)).sum()))
    scale = 4.0 * n * m / (n + m)  # chi2 ≈ scale · V² under the alternative
    p_value = ncx2_sf(chi2, df, scale * tol * tol)
    half = 1.96 * math.sqrt((2 * df + 4 * chi2) / scale**2) / max(2 * v, 1e-12)
    interval = (max(0.0, v - half), min(1.0, v + half))
    return _Raw(v, p_value, interval, {"df": df, "chi2": chi2})


def _bootstrap(
    method: str,
    f: Callable[[F64, F64], F64],
    a: F64,
    b: F64,
    tol: float,
    rng: np.random.Generator,
) -> _Raw:
    n, m = int(a.sum()), int(b.sum())
    if n == 0 or m == 0:  # wasserstein with no finite value on a side: no distance to measure
        far = math.inf if n != m else 0.0
        return _Raw(far, 0.0 if n != m else 1.0, (far, far), {"plug_in": far, "bootstrap": 0})
    p, q = a / n, b / m
    plug_in = float(f(p, q))
    reps = f(rng.multinomial(n, p, size=_BOOTSTRAP) / n, rng.multinomial(m, q, size=_BOOTSTRAP) / m)
    effect = max(0.0, 2.0 * plug_in - float(reps.mean()))  # bias-corrected
    se = float(reps.std(ddof=1))
    # With every replicate equal (se 0) the effect is known exactly.
    exact = 0.0 if effect > tol else 1.0
    p_value = norm_sf((effect - tol) / se) if se > 0 else exact
    lo, hi = np.quantile(reps, [0.025, 0.975])
    interval = (max(0.0, 2.0 * plug_in - float(hi)), max(0.0, 2.0 * plug_in - float(lo)))
    return _Raw(effect, p_value, interval, {"plug_in": plug_in, "bootstrap": _BOOTSTRAP})


def _wasserstein(p: F64, q: F64) -> F64:
    # Under/overflow bins sit at the outermost edges: their mass is moved no further.
    gaps = np.diff(Z_EDGES)
    diff = np.abs(np.cumsum(p, axis=-1) - np.cumsum(q, axis=-1))[..., :-2]
    return np.asarray((diff * gaps).sum(axis=-1))


def _jensen_shannon(p: F64, q: F64) -> F64:
    from scipy.special import xlogy

    mid = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = (xlogy(p, p) - xlogy(p, mid)).sum(axis=-1)
        kl_q = (xlogy(q, q) - xlogy(q, mid)).sum(axis=-1)
    return np.asarray(np.sqrt(np.maximum(0.5 * (kl_p + kl_q), 0.0)))


def _hellinger(p: F64, q: F64) -> F64:
    return np.asarray(np.sqrt(0.5 * ((np.sqrt(p) - np.sqrt(q)) ** 2).sum(axis=-1)))


def _psi(p: F64, q: F64) -> F64:
    p, q = np.maximum(p, _PSI_FLOOR), np.maximum(q, _PSI_FLOOR)
    return np.asarray(((q - p) * np.log(q / p)).sum(axis=-1))


_DIVERGENCES: dict[str, Callable[[F64, F64], F64]] = {
    "jensen_shannon": _jensen_shannon,
    "hellinger": _hellinger,
    "psi": _psi,
}


# --- plot detail --------------------------------------------------------------------------------


def _numeric_plot(ref: ColumnSketch, cur: ColumnSketch, a: F64, b: F64) -> dict[str, Any]:
    starts = _quantile_groups(a, _PLOT_BINS)
    lo, hi = min(ref.min, cur.min), max(ref.max, cur.max)
    if not math.isfinite(lo):  # no finite value on either side: infinities only
        lo, hi = 0.0, 0.0
    # Extended cell e >= 2 starts at Z_EDGES[e - 2] (cell 0 is -inf, cell 1 the underflow).
    # The overflow cells (beyond the last edge, +inf) start past Z_EDGES: clip to its end.
    cells = np.clip(starts[1:] - 2, 0, len(Z_EDGES) - 1)
    with np.errstate(over="ignore", invalid="ignore"):
        inner = ref.layout.center + ref.layout.scale * Z_EDGES[cells]
    edges = np.clip(np.concatenate([[lo], inner, [hi]]), lo, hi)
    return {
        "kind": "numeric",
        "edges": [float(e) for e in edges],
        "reference": _shares(np.add.reduceat(a, starts)),
        "current": _shares(np.add.reduceat(b, starts)),
    }


def _categorical_plot(a: F64, b: F64, names: list[str]) -> dict[str, Any]:
    p, q = a / max(a.sum(), 1.0), b / max(b.sum(), 1.0)
    named = [i for i, name in enumerate(names) if name != "(other)"]
    top = sorted(named, key=lambda i: (-(p[i] + q[i]), names[i]))[:_PLOT_CATEGORIES]
    rest = [i for i in range(len(names)) if i not in set(top)]
    categories = [names[i] for i in top]
    ref_shares, cur_shares = [float(p[i]) for i in top], [float(q[i]) for i in top]
    if rest:
        categories.append("(other)")
        ref_shares.append(float(p[rest].sum()))
        cur_shares.append(float(q[rest].sum()))
    return {
        "kind": "categorical",
        "categories": categories,
        "reference": ref_shares,
        "current": cur_shares,
    }


def _shares(counts: F64) -> list[float]:
    total = counts.sum()
    return [float(c / total) if total else 0.0 for c in counts]


def _sides(ref: ColumnSketch, cur: ColumnSketch) -> dict[str, Any]:
    return {
        "reference_missing": ref.missing / ref.rows if ref.rows else 0.0,
        "current_missing": cur.missing / cur.rows if cur.rows else 0.0,
        "reference_rows": ref.rows,
        "current_rows": cur.rows,
    }
