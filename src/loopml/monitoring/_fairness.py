"""Fairness of a model's decisions per sensitive column, with bootstrap intervals.

:func:`fairness` reads one row per prediction (a sensitive column, the predicted label
and, once feedback arrives, the true label) and returns one :class:`CheckResult` per
metric, check ``fairness``, column = the sensitive column:

=================================  ======  =======  ================================
method                             labels  default  alert when (with evidence)
=================================  ======  =======  ================================
``demographic_parity_difference``  no      0.1      max - min selection rate > 0.1
``demographic_parity_ratio``       no      0.8      min / max selection rate < 0.8
``equal_opportunity_difference``   yes     0.1      max - min true positive rate
``equalized_odds_difference``      yes     0.1      max of the TPR and FPR gaps
``selection_rate`` (per group)     no      --       descriptive
``accuracy`` (per group)           yes     --       below the threshold, if given
``class_imbalance`` (per group)    no      --       abs(CI) above, if given
``difference_in_proportions_of_    yes     --       abs(DPL) above, if given
labels`` (per group)
=================================  ======  =======  ================================

Definitions follow fairlearn (``demographic_parity_difference``/``_ratio``,
``equal_opportunity_difference``, ``equalized_odds_difference`` with
``method="between_groups"``; the tests check equality with fairlearn) and SageMaker
Clarify's pre-training metrics, for each group *d* against the rest *a*:
CI = (n_a - n_d) / (n_a + n_d) and DPL = q_a - q_d, q the share of positive labels
(https://docs.aws.amazon.com/sagemaker/latest/dg/clarify-data-bias-metric-class-imbalance.html).
The 0.8 ratio is the four-fifths rule (29 CFR 1607.4(D)); 0.1 for the differences is
fairlearn's customary tolerance. Thresholds are overridden per method with
``thresholds={"demographic_parity_ratio": 0.9, "accuracy": 0.7, ...}``.

Decision rule: a metric alerts only when its whole ``confidence`` interval lies beyond
the threshold, i.e. there is evidence (one-sided level (1 - confidence) / 2) that the
tolerance is exceeded; the four-fifths guidance itself asks for statistical
significance besides the ratio. A point estimate beyond the threshold whose interval
still reaches it is ``ok`` with a message saying it is inconclusive. ``p_value`` is the
bootstrap share of resamples on the tolerated side. Intervals are percentile bootstrap
intervals stratified by group (group sizes fixed, ``n_resamples`` resamples, seeded):
each group's rows are resampled as a multinomial draw over its six cells (label
positive / negative / missing x predicted positive / negative), which is exactly a
row resample and costs nothing per row. CI's interval is the Wilson interval of the
group's share (its size is what varies there).

Defaults: groups with fewer than ``min_group`` = 30 rows (labelled rows, for the metrics
that need labels) are left out of the between-group metrics and their own results are
``no_data``, named in the message. Rows with a missing sensitive value form the group
``(missing)``; rows without a prediction are dropped (counted in ``detail``). A
sensitive column may have at most :data:`MAX_GROUPS` groups. Without labels (no
feedback yet) the label-free metrics are still computed and the others are
``no_data``; ``prediction=None`` computes the label-only metrics (on training data).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from loopml.errors import InsufficientData, InvalidParameter, UnknownColumnError
from loopml.monitoring._results import CheckResult, Status

__all__ = ["DEFAULT_THRESHOLDS", "MAX_GROUPS", "fairness"]

MAX_GROUPS = 100
"""The most groups a sensitive column may have (an id column given by mistake is refused)."""

DEFAULT_THRESHOLDS: Mapping[str, float | None] = {
    "demographic_parity_difference": 0.1,
    "demographic_parity_ratio": 0.8,
    "equal_opportunity_difference": 0.1,
    "equalized_odds_difference": 0.1,
    "accuracy": None,
    "class_imbalance": None,
    "difference_in_proportions_of_labels": None,
}
"""Default thresholds per method; ``None`` means descriptive unless one is given."""

# Whether a metric is bad when high (differences, two-sided ones by absolute value)
# or when low (ratio, accuracy).
_LOWER_IS_WORSE = frozenset({"demographic_parity_ratio", "accuracy"})
_TWO_SIDED = frozenset({"class_imbalance", "difference_in_proportions_of_labels"})
MISSING_GROUP = "(missing)"
# Cells of a group's contingency table: (label, prediction).
_U_POS, _U_NEG, _TP, _FN, _FP, _TN = range(6)
FloatArray = npt.NDArray[np.float64]


def fairness(
    frame: Any,
    *,
    sensitive: str,
    label: str = "label",
    prediction: str | None = "prediction",
    positive: object = None,
    thresholds: Mapping[str, float] | None = None,
    confidence: float = 0.95,
    min_group: int = 30,
    n_resamples: int = 1000,
    seed: int = 0,
) -> list[CheckResult]:
    """Fairness metrics of the predictions per group of ``sensitive`` (see the module doc).

    Args:
        frame: One row per prediction: a pandas DataFrame or a pyarrow Table.
        sensitive: The sensitive column (an input or a field sent with feedback).
        label: The true-label column; absent or all missing means no labels yet.
        prediction: The predicted-label column; ``None`` for label-only metrics.
        positive: The favourable label; ``None`` infers ``True`` or ``1`` for boolean
            or 0/1 values.
        thresholds: Per-method thresholds replacing :data:`DEFAULT_THRESHOLDS`.
        confidence: Level of the intervals, strictly between 0 and 1.
        min_group: Fewest rows a group needs to be judged.
        n_resamples: Bootstrap resamples.
        seed: Seed of the resampling.

    Returns:
        One result per metric, and per group for the per-group metrics.

    Raises:
        UnknownColumnError: ``sensitive`` or ``prediction`` is not a column.
        InvalidParameter: A bad argument, labels of another type than the predictions,
            an unknown ``positive``, or more than :data:`MAX_GROUPS` groups.
        InsufficientData: No row has a prediction.

    Example:
        >>> import pandas as pd
        >>> df = pd.DataFrame({"sex": ["f", "m"] * 50, "prediction": [0, 1] * 50})
        >>> [r.status for r in fairness(df, sensitive="sex")][:2]
        ['alert', 'alert']
    """
    limits = _validate(thresholds, confidence, min_group, n_resamples)
    data = _columns(frame, sensitive, label, prediction)
    groups, codes = _groups(data["s"], sensitive)
    y_raw, p_raw = data.get("y"), data.get("p")
    pos = _positive(positive, y_raw, p_raw)
    cells = _cells(codes, len(groups), y_raw, p_raw, pos)
    rng = np.random.default_rng(seed)
    boot = np.stack(
        [rng.multinomial(int(c.sum()), c / c.sum(), size=n_resamples) for c in cells], axis=1
    ).astype(np.float64)  # (resamples, groups, cells)
    judge = _Judge(sensitive, confidence, groups, cells, boot, min_group, limits)
    judge.detail["dropped"] = data["dropped"]
    judge.detail["positive"] = str(pos)
    results: list[CheckResult] = []
    if p_raw is not None:
        results += judge.between("demographic_parity_difference", labelled=False)
        results += judge.between("demographic_parity_ratio", labelled=False)
        results += judge.between("equal_opportunity_difference", labelled=True)
        results += judge.between("equalized_odds_difference", labelled=True)
        results += judge.per_group("selection_rate", labelled=False)
        results += judge.per_group("accuracy", labelled=True)
    results += judge.per_group("class_imbalance", labelled=False)
    results += judge.per_group("difference_in_proportions_of_labels", labelled=True)
    return results


def _validate(
    thresholds: Mapping[str, float] | None, confidence: float, min_group: int, n_resamples: int
) -> dict[str, float | None]:
    if not (isinstance(confidence, float | int) and 0.0 < confidence < 1.0):
        raise InvalidParameter(
            "The 'confidence' parameter of fairness must be a float strictly between 0 and 1. "
            f"Got {confidence!r} instead."
        )
    for name, value in (("min_group", min_group), ("n_resamples", n_resamples)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidParameter(
                f"The '{name}' parameter of fairness must be an int >= 1. Got {value!r} instead."
            )
    limits = dict(DEFAULT_THRESHOLDS)
    for key, given in (thresholds or {}).items():
        if key not in limits:
            raise InvalidParameter(
                "The 'thresholds' parameter of fairness must have keys among "
                f"{', '.join(sorted(limits))}. Got {key!r} instead."
            )
        real = isinstance(given, float | int) and not isinstance(given, bool)
        number = float(given) if real else math.nan
        if not math.isfinite(number):
            raise InvalidParameter(
                f"The 'thresholds' parameter of fairness must map {key!r} to a finite number. "
                f"Got {given!r} instead."
            )
        limits[key] = number
    return limits


def _columns(frame: Any, sensitive: str, label: str, prediction: str | None) -> dict[str, Any]:
    """The sensitive, label and prediction columns as pandas Series (rows with a prediction)."""
    names = [n for n in (sensitive, label, prediction) if n is not None]
    if isinstance(frame, pd.DataFrame):
        known = tuple(str(c) for c in frame.columns)
    elif hasattr(frame, "column_names") and hasattr(frame, "select"):  # a pyarrow Table
        known = tuple(frame.column_names)
    else:
        raise InvalidParameter(
            "The 'frame' parameter of fairness must be a pandas DataFrame or a pyarrow Table. "
            f"Got {type(frame).__name__} instead."
        )
    for role, name in (("sensitive", sensitive), ("prediction", prediction)):
        if name is not None and name not in known:
            raise UnknownColumnError(
                f"The {role} column {name!r} is not in the frame; its columns are: "
                f"{', '.join(known) or '(none)'}.",
                columns=(name,),
                known=known,
            )
    present = [n for n in dict.fromkeys(names) if n in known]
    table = frame[present] if isinstance(frame, pd.DataFrame) else frame.select(present).to_pandas()
    keep = np.ones(len(table), dtype=bool)
    if prediction is not None:
        keep = table[prediction].notna().to_numpy()
    table = table[keep]
    if len(table) == 0:
        raise InsufficientData(
            "fairness needs at least one row with a prediction. Got none.", needed=1, got=0
        )
    out: dict[str, Any] = {"s": table[sensitive], "dropped": int((~keep).sum())}
    if label in known and table[label].notna().any():
        out["y"] = table[label]
    if prediction is not None:
        out["p"] = table[prediction]
    return out


def _groups(column: pd.Series[Any], sensitive: str) -> tuple[list[str], npt.NDArray[np.intp]]:
    names = column.astype(object).where(column.notna(), MISSING_GROUP).astype(str)
    codes, uniques = pd.factorize(names, sort=True)
    if len(uniques) > MAX_GROUPS:
        raise InvalidParameter(
            f"The sensitive column {sensitive!r} of fairness must have at most {MAX_GROUPS} "
            f"groups. Got {len(uniques)} instead."
        )
    return [str(u) for u in uniques], np.asarray(codes, dtype=np.intp)


def _positive(positive: object, y: pd.Series[Any] | None, p: pd.Series[Any] | None) -> object:
    seen: dict[str, set[object]] = {}
    for role, series in (("label", y), ("prediction", p)):
        if series is not None:
            seen[role] = set(series.dropna().unique().tolist())
    kinds = {role: {isinstance(v, str) for v in values} for role, values in seen.items()}
    if len(kinds) == 2 and kinds["label"] and kinds["prediction"] != kinds["label"]:
        raise InvalidParameter(
            "The labels of fairness must be of the predictions' type. Got labels "
            f"{_few(seen['label'])} and predictions {_few(seen['prediction'])} instead."
        )
    values = set().union(*seen.values()) if seen else set()
    if positive is None:
        if values and all(isinstance(v, bool | np.bool_) for v in values):
            return True
        if values and values <= {0, 1} and not any(isinstance(v, str) for v in values):
            return 1
        raise InvalidParameter(
            "The 'positive' parameter of fairness must be given when the labels and "
            f"predictions are not boolean or 0/1. Got None instead; values seen: {_few(values)}."
        )
    if positive not in values:
        raise InvalidParameter(
            "The 'positive' parameter of fairness must be one of the predicted or true "
            f"labels {_few(values)}. Got {positive!r} instead."
        )
    return positive


def _few(values: set[object]) -> str:
    shown = sorted(map(repr, values))
    return "[" + ", ".join(shown[:10]) + (", ..." if len(shown) > 10 else "") + "]"


def _cells(
    codes: npt.NDArray[np.intp],
    n_groups: int,
    y: pd.Series[Any] | None,
    p: pd.Series[Any] | None,
    positive: object,
) -> FloatArray:
    """Counts of the six (label, prediction) cells per group: shape ``(groups, 6)``."""
    n = len(codes)
    pred_pos = (
        np.zeros(n, dtype=bool)
        if p is None
        else (p == positive).to_numpy(dtype=bool, na_value=False)
    )
    if y is None:
        cell = np.where(pred_pos, _U_POS, _U_NEG)
    else:
        has = y.notna().to_numpy()
        lab_pos = (y == positive).to_numpy(dtype=bool, na_value=False)
        labelled = np.where(lab_pos, np.where(pred_pos, _TP, _FN), np.where(pred_pos, _FP, _TN))
        cell = np.where(has, labelled, np.where(pred_pos, _U_POS, _U_NEG))
    counts = np.zeros((n_groups, 6), dtype=np.float64)
    np.add.at(counts, (codes, cell), 1.0)
    return counts


def _ratio(num: FloatArray, den: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _rates(c: FloatArray) -> dict[str, FloatArray]:
    """Per-group rates from cell counts ``(..., groups, 6)``; NaN where undefined."""
    rows = c.sum(axis=-1)
    labelled = c[..., _TP] + c[..., _FN] + c[..., _FP] + c[..., _TN]
    label_pos = c[..., _TP] + c[..., _FN]
    total = rows.sum(axis=-1, keepdims=True)
    rest_labelled = labelled.sum(axis=-1, keepdims=True) - labelled
    return {
        "n": rows,
        "labelled": labelled,
        "selection_rate": _ratio(c[..., _U_POS] + c[..., _TP] + c[..., _FP], rows),
        "accuracy": _ratio(c[..., _TP] + c[..., _TN], labelled),
        "true_positive_rate": _ratio(c[..., _TP], label_pos),
        "false_positive_rate": _ratio(c[..., _FP], c[..., _FP] + c[..., _TN]),
        "positive_label_rate": _ratio(label_pos, labelled),
        "class_imbalance": _ratio(total - 2.0 * rows, total),
        "difference_in_proportions_of_labels": _ratio(
            label_pos.sum(axis=-1, keepdims=True) - label_pos, rest_labelled
        )
        - _ratio(label_pos, labelled),
    }


def _gap(rates: FloatArray, method: str) -> FloatArray:
    """A between-group statistic over the last axis (the groups)."""
    with np.errstate(invalid="ignore"):
        top, low = np.max(rates, axis=-1), np.min(rates, axis=-1)
    if method == "demographic_parity_ratio":
        # No group selected at all is parity too (0/0 would be undefined).
        ratio: FloatArray = np.where(top > 0, low / np.where(top > 0, top, 1.0), 1.0)
        return ratio
    gap: FloatArray = top - low
    return gap


class _Judge:
    """Turns point estimates and bootstrap resamples into results (one sensitive column)."""

    def __init__(
        self,
        column: str,
        confidence: float,
        groups: list[str],
        cells: FloatArray,
        boot: FloatArray,
        min_group: int,
        limits: dict[str, float | None],
    ) -> None:
        self.column, self.confidence, self.groups = column, confidence, groups
        self.point, self.boot = _rates(cells), _rates(boot)
        self.min_group, self.limits = min_group, limits
        self.any_labels = bool(self.point["labelled"].sum() > 0)
        self.detail: dict[str, Any] = {
            "groups": {
                g: {
                    "n": int(self.point["n"][i]),
                    "labelled": int(self.point["labelled"][i]),
                }
                | {
                    key: _num(self.point[key][i])
                    for key in (
                        "selection_rate",
                        "accuracy",
                        "true_positive_rate",
                        "false_positive_rate",
                        "positive_label_rate",
                    )
                }
                for i, g in enumerate(groups)
            },
            "confidence": confidence,
            "resamples": int(boot.shape[0]),
            "min_group": min_group,
        }

    def _eligible(self, labelled: bool) -> npt.NDArray[np.bool_]:
        return self.point["labelled" if labelled else "n"] >= self.min_group

    def _no_data(self, method: str, segment: str, why: str) -> CheckResult:
        return CheckResult(
            check="fairness",
            column=self.column,
            method=method,
            statistic=None,
            threshold=self.limits.get(method),
            status="no_data",
            segment=segment,
            message=f"{method} of {self.column!r} not judged: {why}.",
            detail=self.detail,
        )

    def between(self, method: str, *, labelled: bool) -> list[CheckResult]:
        """One result for a metric comparing the groups."""
        if labelled and not self.any_labels:
            return [self._no_data(method, "", "no labels yet")]
        ok = self._eligible(labelled)
        small = [g for g, e in zip(self.groups, ok, strict=True) if not e]
        if ok.sum() < 2:
            rows = "labelled rows" if labelled else "rows"
            return [
                self._no_data(
                    method,
                    "",
                    f"fewer than two groups with at least {self.min_group} {rows} "
                    f"(too small: {', '.join(small) or 'none'})",
                )
            ]
        point = float(self._between(self.point, method, ok))
        samples = self._between(self.boot, method, ok)
        note = f"; left out (fewer than {self.min_group} rows): {', '.join(small)}" if small else ""
        return [self._judge(method, "", point, samples, note, {**self.detail, "excluded": small})]

    def _between(self, rates: dict[str, FloatArray], method: str, ok: npt.NDArray[np.bool_]) -> Any:
        if method.startswith("demographic_parity"):
            return _gap(rates["selection_rate"][..., ok], method)
        tpr = _gap(rates["true_positive_rate"][..., ok], method)
        if method == "equal_opportunity_difference":
            return tpr
        return np.maximum(tpr, _gap(rates["false_positive_rate"][..., ok], method))

    def per_group(self, method: str, *, labelled: bool) -> list[CheckResult]:
        """One result per group for a per-group metric."""
        if labelled and not self.any_labels:
            return [self._no_data(method, g, "no labels yet") for g in self.groups]
        ok = self._eligible(labelled)
        out = []
        for i, group in enumerate(self.groups):
            if not ok[i]:
                rows = int(self.point["labelled" if labelled else "n"][i])
                kind = "labelled rows" if labelled else "rows"
                why = f"group {group!r} has {rows} {kind}, fewer than {self.min_group}"
                out.append(self._no_data(method, group, why))
                continue
            point = float(self.point[method][i])
            if method == "class_imbalance":
                out.append(self._judge_ci(group, point))
            else:
                out.append(
                    self._judge(method, group, point, self.boot[method][:, i], "", self.detail)
                )
        return out

    def _judge(
        self,
        method: str,
        segment: str,
        point: float,
        samples: FloatArray,
        note: str,
        detail: dict[str, Any],
    ) -> CheckResult:
        finite = samples[np.isfinite(samples)]
        if not math.isfinite(point) or finite.size == 0:
            return self._no_data(method, segment, "undefined on these rows (a zero denominator)")
        tail = (1.0 - self.confidence) / 2.0
        low, high = (float(v) for v in np.quantile(finite, [tail, 1.0 - tail]))
        return self._decide(method, segment, point, (low, high), finite, note, detail)

    def _judge_ci(self, group: str, point: float) -> CheckResult:
        # Group sizes are fixed in the stratified bootstrap, so CI's uncertainty comes
        # from the group's share: the Wilson interval of n_d / N, mapped by CI = 1 - 2 p.
        n_d, total = float(self.point["n"][self.groups.index(group)]), float(self.point["n"].sum())
        from scipy.stats import norm

        z = float(norm.ppf(0.5 + self.confidence / 2.0))
        share = n_d / total
        centre = (share + z * z / (2 * total)) / (1 + z * z / total)
        half = z * math.sqrt(share * (1 - share) / total + z * z / (4 * total * total))
        half /= 1 + z * z / total
        interval = (1.0 - 2.0 * (centre + half), 1.0 - 2.0 * (centre - half))
        return self._decide("class_imbalance", group, point, interval, None, "", self.detail)

    def _decide(
        self,
        method: str,
        segment: str,
        point: float,
        interval: tuple[float, float],
        samples: FloatArray | None,
        note: str,
        detail: dict[str, Any],
    ) -> CheckResult:
        limit = self.limits.get(method)
        low, high = interval
        where = f" for group {segment!r}" if segment else ""
        text = f"{method}{where} of {self.column!r} is {point:.3g} [{low:.3g}, {high:.3g}]"
        status: Status = "ok"
        p_value = None
        if limit is not None:
            if method in _LOWER_IS_WORSE:
                status = "alert" if high < limit else "ok"
                tolerated = None if samples is None else samples >= limit
                beyond = point < limit
            elif method in _TWO_SIDED:
                status = "alert" if low > limit or high < -limit else "ok"
                tolerated = None if samples is None else np.abs(samples) <= limit
                beyond = abs(point) > limit
            else:
                status = "alert" if low > limit else "ok"
                tolerated = None if samples is None else samples <= limit
                beyond = point > limit
            if tolerated is not None:
                p_value = float((1 + tolerated.sum()) / (1 + tolerated.size))
            if status == "alert":
                text += f", beyond the threshold {limit:g}"
            elif beyond:
                text += f"; beyond {limit:g} but not conclusively (the interval reaches it)"
            else:
                text += f", within {limit:g}"
        return CheckResult(
            check="fairness",
            column=self.column,
            method=method,
            statistic=point,
            threshold=limit,
            status=status,
            p_value=p_value,
            interval=(low, high),
            segment=segment,
            message=text + note + ".",
            detail=detail,
        )


def _num(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
