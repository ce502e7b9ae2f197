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
bootstrap share of resamples on the tolerated side. Intervals come from a bootstrap
stratified by group (group sizes fixed, ``n_resamples`` resamples, seeded): each group's
rows are resampled as a multinomial draw over its six cells (label positive / negative /
missing x predicted positive / negative), which is exactly a row resample and costs
nothing per row. Per-group rates get the percentile interval. The between-group
metrics are maxima (minima) over groups, biased away from parity on every resample,
so they get the basic bootstrap interval (resamples reflected about the estimate; the
ratio on the log scale): with it, fair predictions on 2 x 30 or 4 x 60 rows raise any
alert in at most 5 % of samples (the tests check it), against about 6 % with the
percentile interval. CI's interval is the Wilson interval of the group's share (its
size is what varies there).

Defaults: groups with fewer than ``min_group`` = 30 rows (labelled rows, for the metrics
that need labels) are left out of the between-group metrics and their own results are
``no_data``, named in the message. Rows with a missing sensitive value form the group
``(missing)``; rows without a prediction are dropped (counted in ``detail``). A
sensitive column may have at most :data:`MAX_GROUPS` groups. Without labels (no
feedback yet) the label-free metrics are still computed and the others are
``no_data``; ``prediction=None`` computes the label-only metrics (on training data).

``detail``: the between-group results hold ``groups``, per group ``n``, ``labelled``,
``selection_rate``, ``accuracy``, ``true_positive_rate``, ``false_positive_rate`` and
``positive_label_rate`` (``None`` where undefined) and ``excluded`` (the small groups);
a per-group result holds its own ``group`` row only. All hold ``confidence``,
``resamples``, ``min_group``, ``dropped`` and ``positive``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from loopml.errors import InsufficientData, InvalidParameter, UnknownColumnError
from loopml.monitoring._fairness_metrics import FairnessJudge, cell_counts
from loopml.monitoring._results import CheckResult

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DEFAULT_THRESHOLDS", "MAX_GROUPS", "MAX_RESAMPLES", "fairness"]

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

MISSING_GROUP = "(missing)"
MAX_RESAMPLES = 10_000
"""The most bootstrap resamples (the resample array is resamples x groups x 6 floats)."""


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
    cells = cell_counts(codes, len(groups), y_raw, p_raw, pos)
    rng = np.random.default_rng(seed)
    boot = np.stack(
        [rng.multinomial(int(c.sum()), c / c.sum(), size=n_resamples) for c in cells], axis=1
    ).astype(np.float64)  # (resamples, groups, cells)
    judge = FairnessJudge(sensitive, confidence, groups, cells, boot, min_group, limits)
    judge.common["dropped"] = data["dropped"]
    judge.common["positive"] = str(pos)
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
    for name, value, most in (
        ("min_group", min_group, None),
        ("n_resamples", n_resamples, MAX_RESAMPLES),
    ):
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < 1
            or (most is not None and value > most)
        ):
            bound = ">= 1" if most is None else f"in [1, {most}]"
            raise InvalidParameter(
                f"The '{name}' parameter of fairness must be an int {bound}. Got {value!r} instead."
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
    import pandas as pd  # imported on use: importing loopml.monitoring stays cheap

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
    import pandas as pd

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
