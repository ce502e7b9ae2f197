"""Compare an endpoint's routes on live traffic: the prediction log joined with feedback.

For each route (``primary:credit@champion``, ``canary:credit/7``, ``shadow:credit/8``)
:func:`compare_routes` reports the model versions that answered, how many
predictions were logged and how many rows have a label, the metric with a
percentile bootstrap interval, and the latency p50/p95. Every other route is then
set against a *baseline* route (by default the primary that answered most):

* A shadow scored the same requests as the route that answered them, so the two
  are compared **paired**, on the requests both scored: a paired bootstrap of the
  difference, with McNemar's exact test for accuracy and a paired t-test on the
  per-row losses for MAE and RMSE.
* Primaries and canaries answer different requests, so they are compared
  **unpaired**: each side resampled on its own, with a two-proportion z-test for
  accuracy and Welch's t-test on the per-row losses for MAE and RMSE.

(The intervals and tests are in :mod:`loopml.serving._significance`.)

A difference is *significant* when its p-value is below ``1 - confidence`` **and**
its interval excludes zero (F1, precision, recall and R² have no test here and
rely on the interval alone), and never while either side has fewer than
``min_labelled`` labelled rows: that is reported as ``too_few_labels``. No
correction is made for comparing several routes with one baseline.

Labels pair with predictions row by row: a request of k rows takes a list of k
labels, a one-row request a bare label too; other labels are counted as
``unmatched_labels`` and left out. A shadow's label is the label of the request it
copied (its request id is ``<id>:shadow:<ref>``), found among the predictions read.
The statistics are the registry's (:mod:`loopml.registry._stats`).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from loopml.artifacts import ArtifactStore
from loopml.errors import InvalidParameter
from loopml.registry._client import RegistryClient
from loopml.registry._stats import METRICS, Metric, bootstrap_interval
from loopml.serving._deployments import DeploymentClient
from loopml.serving._predlog import SHADOW_MARK
from loopml.serving._predlog_reading import read_predictions
from loopml.serving._significance import Sample, difference_interval, method, two_sided_p
from loopml.store import Store

__all__ = [
    "COMPARABLE_METRICS",
    "Estimate",
    "RouteComparison",
    "RouteDifference",
    "RouteStats",
    "Verdict",
    "compare_predictions",
    "compare_routes",
]

Pair = tuple[Any, Any]
"""One scored row: ``(prediction, label)``."""

Verdict = Literal["better", "worse", "no_difference", "too_few_labels"]
"""How a route compares with the baseline (``better``/``worse`` only when significant)."""

_CLASSIFICATION = ("accuracy", "f1", "precision", "recall")
_REGRESSION = ("rmse", "mae", "r2")
COMPARABLE_METRICS: tuple[str, ...] = _CLASSIFICATION + _REGRESSION
"""Metrics of predicted labels or values (the log holds no probabilities, so no AUC)."""

_MODE_ORDER = {"primary": 0, "canary": 1, "shadow": 2}
_COLUMNS = ("request_id", "endpoint", "route", "model_version", "latency_ms", "output", "label")


@dataclass(frozen=True)
class Estimate:
    """A metric value, or a difference of two, with its confidence interval.

    Attributes:
        value: the point estimate on all rows.
        low: lower bound of the interval (``nan`` where the metric is undefined on
            every resample, e.g. R² of constant labels).
        high: upper bound of the interval.
    """

    value: float
    low: float
    high: float

    def excludes_zero(self) -> bool:
        """Whether the whole interval lies on one side of zero."""
        return self.low > 0 or self.high < 0


@dataclass(frozen=True)
class RouteStats:
    """What one route did in the window read.

    Attributes:
        route: the route as logged, ``mode:model-ref`` (``canary:credit/7``).
        mode: ``primary``, ``canary`` or ``shadow`` (empty when the label has none).
        model_versions: the versions that answered, most requests first.
        predictions: logged predictions (requests) of the route.
        labelled: rows scored against a label (a request of k rows with k labels
            counts k).
        unmatched_labels: requests whose label does not pair with the prediction
            (another length, or not a plain value); left out of the metric.
        metric: the metric on the labelled rows with its interval (``None``: no label).
        latency_p50_ms: median latency over every prediction of the route.
        latency_p95_ms: 95th percentile latency.
    """

    route: str
    mode: str
    model_versions: tuple[str, ...]
    predictions: int
    labelled: int
    unmatched_labels: int
    metric: Estimate | None
    latency_p50_ms: float
    latency_p95_ms: float


@dataclass(frozen=True)
class RouteDifference:
    """One route against the baseline: ``metric(route) - metric(baseline)``.

    Attributes:
        route: the route.
        baseline: the baseline route.
        paired: compared on the same requests (a shadow and the route it copied)
            rather than on different ones (A/B routes).
        n_route: labelled rows of the route in the comparison.
        n_baseline: labelled rows of the baseline in the comparison (equal to
            ``n_route`` when paired).
        difference: the difference with its interval; ``None`` when a side has no
            labelled row.
        p_value: two-sided p-value of the test; ``None`` with too few labelled rows
            or for a metric without a test.
        test: how the difference was judged, e.g. ``McNemar exact test``.
        significant: ``p_value < 1 - confidence``, the interval excludes zero and
            both sides have at least ``min_labelled`` rows.
        verdict: ``better``, ``worse``, ``no_difference`` or ``too_few_labels``.
    """

    route: str
    baseline: str
    paired: bool
    n_route: int
    n_baseline: int
    difference: Estimate | None
    p_value: float | None
    test: str
    significant: bool
    verdict: Verdict


@dataclass(frozen=True)
class RouteComparison:
    """Every route of an endpoint on one metric, each set against the baseline.

    Attributes:
        endpoint: the endpoint.
        metric: the metric's name (see :data:`COMPARABLE_METRICS`).
        higher_is_better: whether a larger metric is better (``False`` for errors).
        confidence: the level of every interval, e.g. ``0.95``.
        min_labelled: labelled rows each side needs before anything is significant.
        baseline: the baseline route.
        routes: every route, the baseline first.
        differences: every other route against the baseline, in the order of ``routes``.
        summary: one sentence saying what the comparison found.
    """

    endpoint: str
    metric: str
    higher_is_better: bool
    confidence: float
    min_labelled: int
    baseline: str
    routes: tuple[RouteStats, ...]
    differences: tuple[RouteDifference, ...]
    summary: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "summary", _summary(self))

    def difference(self, route: str) -> RouteDifference | None:
        """The comparison of ``route`` with the baseline (``None`` for the baseline)."""
        return next((d for d in self.differences if d.route == route), None)

    def to_dict(self) -> dict[str, Any]:
        """The comparison as plain data (``nan`` where an interval is undefined)."""
        return asdict(self)


@dataclass(frozen=True)
class _Options:
    confidence: float
    min_labelled: int
    n_resamples: int
    seed: int

    @classmethod
    def checked(cls, confidence: float, min_labelled: int, n_resamples: int, seed: int) -> _Options:
        if not (isinstance(confidence, float | int) and 0.0 < confidence < 1.0):
            raise _bad("confidence", "a number strictly between 0 and 1", confidence)
        if isinstance(min_labelled, bool) or not isinstance(min_labelled, int) or min_labelled < 2:
            raise _bad("min_labelled", "an int >= 2", min_labelled)
        if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
            raise _bad("n_resamples", "an int >= 1", n_resamples)
        return cls(float(confidence), min_labelled, n_resamples, seed)


@dataclass
class _Route:
    """One route's rows while they are collected."""

    name: str
    versions: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    # answered request id -> that request's scored rows
    scored: dict[str, list[Pair]] = field(default_factory=dict)
    unmatched: int = 0

    @property
    def mode(self) -> str:
        mode, colon, _ = self.name.partition(":")
        return mode if colon and mode in _MODE_ORDER else ""

    def rows(self, keys: Iterable[str] | None = None) -> list[Pair]:
        return [
            pair for key in (self.scored if keys is None else keys) for pair in self.scored[key]
        ]


def compare_routes(
    store: Store,
    artifacts: ArtifactStore,
    endpoint: str,
    *,
    project: str,
    since_ms: int | None = None,
    metric: str | None = None,
    baseline: str | None = None,
    confidence: float = 0.95,
    min_labelled: int = 30,
    n_resamples: int = 2000,
    seed: int = 0,
    wal_folders: Sequence[Path] = (),
    until_ms: int | None = None,
) -> RouteComparison:
    """Compare the routes of ``endpoint`` on its logged predictions and their feedback.

    Args:
        store: the metadata store.
        artifacts: the artifact store holding the prediction segments.
        endpoint: the endpoint (it must be deployed in ``project``).
        project: the project.
        since_ms: only predictions answered at or after this time (ms since the epoch).
        until_ms: only predictions answered before this time (ms since the epoch).
        metric: one of :data:`COMPARABLE_METRICS`; default ``accuracy`` when labels
            and predictions are discrete (text, booleans, whole numbers), ``rmse``
            when they are real numbers.
        baseline: the route to compare with, as logged (``primary:credit@champion``)
            or by its model reference (``credit@champion``); default: the primary
            with the most predictions.
        confidence: level of the intervals; differences are tested at
            ``1 - confidence``.
        min_labelled: labelled rows each side needs before a difference can be
            significant.
        n_resamples: bootstrap resamples per interval.
        seed: seed of the resampling, so results are reproducible.
        wal_folders: local prediction-log folders whose records have not reached the
            store yet (``_claim.local_log_folders()``), read too.

    Returns:
        The per-route statistics and each route against the baseline.

    Raises:
        DeploymentNotFound: ``endpoint`` is not deployed in ``project``.
        InvalidParameter: a bad argument or unknown metric or baseline, no logged
            prediction, no prediction with feedback yet, or labels that no metric
            can compare with the predictions.

    Example:
        >>> result = compare_routes(store, artifacts, "credit", project="p")  # doctest: +SKIP
        >>> result.summary                                                       # doctest: +SKIP
        'On accuracy, canary:credit/7 is better than primary:credit@champion (...).'
    """
    options = _Options.checked(confidence, min_labelled, n_resamples, seed)
    DeploymentClient(store, RegistryClient(store, artifacts)).get(endpoint, project=project)
    frame = read_predictions(
        store,
        artifacts,
        endpoint,
        since_ms=since_ms,
        until_ms=until_ms,
        with_feedback=True,
        wal_folders=wal_folders,
    )
    if frame.empty:
        when = "" if since_ms is None else f" since {_when(since_ms)}"
        raise InvalidParameter(
            f"Endpoint {endpoint!r} has no logged predictions{when}; serve it with "
            f"`loopml serve {endpoint}` and send requests first."
        )
    return _compare(frame, metric, baseline, options)


def compare_predictions(
    frame: pd.DataFrame,
    *,
    metric: str | None = None,
    baseline: str | None = None,
    confidence: float = 0.95,
    min_labelled: int = 30,
    n_resamples: int = 2000,
    seed: int = 0,
) -> RouteComparison:
    """Compare the routes in a frame of :func:`~loopml.serving.predictions`.

    :func:`compare_routes` reads the frame from the log; this is the same analysis
    for a frame at hand (filtered, say, to one customer segment).

    Args:
        frame: one endpoint's predictions with the columns ``request_id``,
            ``endpoint``, ``route``, ``model_version``, ``latency_ms``, ``output`` (JSON
            text) and ``label``.
        metric: see :func:`compare_routes`.
        baseline: see :func:`compare_routes`.
        confidence: see :func:`compare_routes`.
        min_labelled: see :func:`compare_routes`.
        n_resamples: see :func:`compare_routes`.
        seed: see :func:`compare_routes`.

    Returns:
        The per-route statistics and each route against the baseline.

    Raises:
        InvalidParameter: a bad argument, a frame without those columns or without
            rows, no labelled prediction, an unknown metric or baseline, or labels
            that no metric can compare with the predictions.
    """
    options = _Options.checked(confidence, min_labelled, n_resamples, seed)
    missing = [c for c in _COLUMNS if c not in frame.columns]
    if missing:
        raise _bad(
            "frame",
            f"a frame of loopml.serving.predictions(...) with the columns {list(_COLUMNS)}",
            f"a frame without {missing}",
        )
    if frame.empty:
        raise InvalidParameter("The 'frame' parameter has no predictions to compare.")
    return _compare(frame, metric, baseline, options)


# -- the analysis ------------------------------------------------------------------------


def _compare(
    frame: pd.DataFrame, metric: str | None, baseline: str | None, options: _Options
) -> RouteComparison:
    endpoint = str(frame["endpoint"].iloc[0])
    routes = _collect(frame)
    if not any(r.scored for r in routes.values()):
        raise InvalidParameter(_no_labels(endpoint, len(frame), routes))
    scorer = _metric(metric, routes, endpoint)
    base = _baseline(baseline, routes)
    ordered = sorted(
        routes.values(),
        key=lambda r: (r.name != base, _MODE_ORDER.get(r.mode, len(_MODE_ORDER)), r.name),
    )
    return RouteComparison(
        endpoint=endpoint,
        metric=scorer.name,
        higher_is_better=scorer.higher_is_better,
        confidence=options.confidence,
        min_labelled=options.min_labelled,
        baseline=base,
        routes=tuple(_route_stats(r, scorer, options) for r in ordered),
        differences=tuple(
            _difference(r, routes[base], scorer, options) for r in ordered if r.name != base
        ),
    )


def _collect(frame: pd.DataFrame) -> dict[str, _Route]:
    """Group the rows by route and pair each labelled request's outputs with its labels."""
    ids = [str(r) for r in frame["request_id"].tolist()]
    labels = frame["label"].tolist()
    answered_labels = {
        rid: label for rid, label in zip(ids, labels, strict=True) if not _missing(label)
    }
    routes: dict[str, _Route] = {}
    for rid, name, version, latency, output, label in zip(
        ids,
        frame["route"].tolist(),
        frame["model_version"].tolist(),
        frame["latency_ms"].tolist(),
        frame["output"].tolist(),
        labels,
        strict=True,
    ):
        route = routes.setdefault(str(name), _Route(str(name)))
        route.versions[str(version)] += 1
        route.latencies.append(float(latency))
        answered = rid.split(SHADOW_MARK, 1)[0]
        truth = answered_labels.get(answered) if _missing(label) else label
        if _missing(truth):
            continue
        pairs = _pairs(_json_output(rid, output), truth)
        if pairs is None:
            route.unmatched += 1
        else:
            route.scored[answered] = pairs
    return routes


def _json_output(request_id: str, output: Any) -> Any:
    if not isinstance(output, str):
        return output
    try:
        return json.loads(output)
    except ValueError:
        raise InvalidParameter(
            f"The output of request {request_id!r} must be JSON text. Got {output[:80]!r} instead."
        ) from None


def _pairs(output: Any, label: Any) -> list[Pair] | None:
    """Row-wise ``(prediction, label)`` pairs, or ``None`` when they do not pair up."""
    predicted = output if isinstance(output, list) else [output]
    if isinstance(label, list):
        given = label
    elif len(predicted) == 1:
        given = [label]
    else:
        return None
    if len(given) != len(predicted) or not all(map(_plain, (*predicted, *given))):
        return None
    return list(zip(predicted, given, strict=True))


def _plain(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str | int)  # bool is an int


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _metric(name: str | None, routes: dict[str, _Route], endpoint: str) -> Metric:
    """The named metric, or the default one for the labels and predictions."""
    if name is not None and name not in COMPARABLE_METRICS:
        raise _bad(
            "metric",
            f"one of {', '.join(COMPARABLE_METRICS)} (the log holds predicted labels and "
            "values, not probabilities)",
            name,
        )
    values = [v for route in routes.values() for pair in route.rows() for v in pair]
    text = next((v for v in values if isinstance(v, str)), None)
    number = next((v for v in values if not isinstance(v, str)), None)
    if text is not None and number is not None:
        raise InvalidParameter(
            f"The labels and predictions of endpoint {endpoint!r} mix text ({text!r}) and "
            f"numbers ({number!r}); no metric can compare them. Send labels of the type "
            "the model predicts."
        )
    if name in _REGRESSION and text is not None:
        raise InvalidParameter(
            f"The metric {name!r} needs numeric labels and predictions; endpoint "
            f"{endpoint!r} has text ones (e.g. {text!r}). Use one of {', '.join(_CLASSIFICATION)}."
        )
    if name is None:
        real = any(isinstance(v, float) and not v.is_integer() for v in values)
        name = "rmse" if real else "accuracy"
    return METRICS[name]


def _baseline(chosen: str | None, routes: dict[str, _Route]) -> str:
    if chosen is None:
        answering = [r for r in routes.values() if r.mode != "shadow"] or list(routes.values())
        best = max(
            answering,
            key=lambda r: (r.mode == "primary", sum(r.versions.values()), r.name),
        )
        return best.name
    if chosen in routes:
        return chosen
    matches = [name for name in routes if name.partition(":")[2] == chosen]
    if len(matches) != 1:
        raise _bad("baseline", f"one of the routes {', '.join(sorted(routes))}", chosen)
    return matches[0]


def _route_stats(route: _Route, metric: Metric, options: _Options) -> RouteStats:
    rows = route.rows()
    p50, p95 = np.percentile(np.asarray(route.latencies, dtype=np.float64), [50, 95])
    return RouteStats(
        route=route.name,
        mode=route.mode,
        model_versions=tuple(v for v, _ in route.versions.most_common()),
        predictions=sum(route.versions.values()),
        labelled=len(rows),
        unmatched_labels=route.unmatched,
        metric=_estimate(metric, rows, options) if rows else None,
        latency_p50_ms=float(p50),
        latency_p95_ms=float(p95),
    )


def _estimate(metric: Metric, rows: Sequence[Pair], options: _Options) -> Estimate:
    y, predicted = _arrays(rows)
    value = metric(y, predicted)
    try:
        low, high = bootstrap_interval(
            metric.name,
            y,
            predicted,
            n_resamples=options.n_resamples,
            confidence=options.confidence,
            seed=options.seed,
        )
    except InvalidParameter:  # undefined on every resample (R² of constant labels)
        low = high = math.nan
    return Estimate(value, low, high)


def _difference(route: _Route, base: _Route, metric: Metric, options: _Options) -> RouteDifference:
    common = [k for k in route.scored if len(base.scored.get(k, ())) == len(route.scored[k])]
    paired = bool(common)
    if paired:
        rows, base_rows = route.rows(common), base.rows(common)
    else:
        rows, base_rows = route.rows(), base.rows()
    estimate: Estimate | None = None
    p_value: float | None = None
    significant = False
    verdict: Verdict = "too_few_labels"
    if rows and base_rows:
        sample, base_sample = _arrays(rows), _arrays(base_rows)
        low, high = difference_interval(
            metric,
            sample,
            base_sample,
            paired=paired,
            n_resamples=options.n_resamples,
            confidence=options.confidence,
            seed=options.seed,
        )
        estimate = Estimate(metric(*sample) - metric(*base_sample), low, high)
        if min(len(rows), len(base_rows)) >= options.min_labelled:
            p_value = two_sided_p(metric.name, paired, sample, base_sample)
            significant = estimate.excludes_zero() and (
                p_value is None or p_value < 1.0 - options.confidence
            )
            verdict = "no_difference"
            if significant:
                verdict = "better" if (estimate.value > 0) == metric.higher_is_better else "worse"
    return RouteDifference(
        route=route.name,
        baseline=base.name,
        paired=paired,
        n_route=len(rows),
        n_baseline=len(base_rows),
        difference=estimate,
        p_value=p_value,
        test=method(metric.name, paired),
        significant=significant,
        verdict=verdict,
    )


def _arrays(rows: Sequence[Pair]) -> Sample:
    """``(labels, predictions)`` as arrays."""
    return np.asarray([label for _, label in rows]), np.asarray([p for p, _ in rows])


# -- words -------------------------------------------------------------------------------


def _summary(comparison: RouteComparison) -> str:
    """One sentence: what each route's comparison with the baseline found."""
    base = comparison.baseline
    if not comparison.differences:
        return f"Only {base} has predictions; there is nothing to compare it with."
    clauses = []
    for d in comparison.differences:
        if d.verdict == "too_few_labels" or d.difference is None:
            clauses.append(
                f"{d.route} has too few labelled predictions to decide "
                f"({min(d.n_route, d.n_baseline)} of {comparison.min_labelled} needed)"
            )
            continue
        numbers = f"Δ {d.difference.value:+.3g}"
        if d.p_value is not None:
            numbers += f", {_p_text(d.p_value)}"
        if d.verdict == "no_difference":
            clauses.append(f"{d.route} does not differ significantly from {base} ({numbers})")
        else:
            clauses.append(f"{d.route} is significantly {d.verdict} than {base} ({numbers})")
    return f"On {comparison.metric}, " + "; ".join(clauses) + "."


def _p_text(p_value: float) -> str:
    return "p < 0.0001" if p_value < 1e-4 else f"p = {p_value:.2g}"


def _no_labels(endpoint: str, count: int, routes: dict[str, _Route]) -> str:
    unmatched = sum(r.unmatched for r in routes.values())
    if unmatched:
        return (
            f"None of the {count} predictions of endpoint {endpoint!r} has a label that pairs "
            f"with its output ({unmatched} labels do not: a request of k rows needs a list "
            "of k labels)."
        )
    return (
        f"None of the {count} predictions of endpoint {endpoint!r} has feedback yet; send "
        f"labels to POST /v1/endpoints/{endpoint}/feedback first."
    )


def _when(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000).isoformat(sep=" ", timespec="seconds")


def _bad(parameter: str, expected: str, got: object) -> InvalidParameter:
    return InvalidParameter(f"The '{parameter}' parameter must be {expected}. Got {got!r} instead.")
