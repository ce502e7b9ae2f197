"""The checks a stored monitor runs, each over one run's :class:`CheckContext`.

Each function adapts one check module to a monitor run: it picks the columns, the
reference form (a dataset version's cached sketch, or rows), and the options the
monitor's configuration gives, and returns that module's :class:`CheckResult` objects.
A check that cannot judge this run's data raises :class:`InsufficientData`, which
the run records as ``no_data`` for that check.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from loopml.errors import InsufficientData
from loopml.monitoring._context import Check, CheckContext
from loopml.monitoring._results import CheckResult

__all__ = ["MONITOR_CHECKS"]

_SKETCHABLE = {"numeric", "boolean", "categorical", "text"}


def drift(context: CheckContext, options: dict[str, Any]) -> list[CheckResult]:
    """Per-column drift of inputs (and predictions, labels) plus the share of drifted columns."""
    from loopml.monitoring._drift import detect_drift
    from loopml.monitoring._reference_cache import reference_sketch
    from loopml.monitoring._sketch import sketch

    columns = list(options.get("columns") or context.columns)
    current = context.current.table
    reference_data = context.reference
    extra = [
        c for c in ("prediction",) if c in current.column_names and c in reference_data.columns
    ]
    if (
        context.spec.label
        and context.spec.label in reference_data.columns
        and ("label" in current.column_names)
    ):
        extra.append("label")
    version = reference_data.dataset
    reference: Any
    if version is not None and not extra:
        sketchable = [
            c
            for c in columns
            if c in version.profile.columns and version.profile.columns[c].kind in _SKETCHABLE
        ]
        reference = reference_sketch(
            context.readers.store,
            context.readers.artifacts,
            version,
            sketchable,
            lambda: reference_data.table,
        )
        columns = sketchable
        current_data: Any = sketch(current.select(columns), reference.layout)
    else:
        reference = _rows(reference_data.table, columns, extra, context.spec.label)
        current_data = _rows(current, columns, extra, "label")
        columns = columns + extra
    report = detect_drift(
        reference,
        current_data,
        columns=columns,
        methods=options.get("methods"),
        tolerances=options.get("tolerances"),
        fdr=float(options.get("fdr", 0.05)),
    )
    return [*report.checks, report.dataset]


def _rows(table: pa.Table, columns: list[str], extra: list[str], label: str | None) -> pa.Table:
    picked = table.select([c for c in columns if c in table.column_names])
    for name in extra:
        source = label if name == "label" and label else name
        if source in table.column_names:
            picked = picked.append_column(name, table.column(source))
    return picked


def multivariate(context: CheckContext, options: dict[str, Any]) -> list[CheckResult]:
    """A domain classifier telling reference rows from current ones (joint changes)."""
    from loopml.monitoring._multivariate import domain_classifier_drift

    columns = context.columns
    return [
        domain_classifier_drift(
            context.reference.table.select(columns),
            context.current.table.select(columns),
            threshold=float(options.get("threshold", 0.55)),
            sample=int(options.get("sample", 20_000)),
        )
    ]


def performance(context: CheckContext, options: dict[str, Any]) -> list[CheckResult]:
    """Realised quality on the rows whose labels arrived, per route."""
    from loopml.monitoring._performance import performance as realised

    current = context.current.table
    if "label" not in current.column_names:
        raise InsufficientData("performance needs labels: this data has no 'label' column.")
    return realised(
        current,
        task=options.get("task"),
        metrics=options.get("metrics"),
        thresholds=options.get("thresholds"),
        min_labels=int(options.get("min_labels", 100)),
        by=("route",) if context.spec.endpoint else (),
    )


def estimated_performance(context: CheckContext, options: dict[str, Any]) -> list[CheckResult]:
    """Quality estimated from calibrated scores before labels arrive (CBPE)."""
    from loopml.monitoring._estimated import estimate_performance

    reference = _with_probabilities(context.reference.table)
    current = _with_probabilities(context.current.table)
    if "label" not in reference.column_names or not reference.num_rows:
        raise InsufficientData(
            "estimated_performance needs a reference of labelled predictions with class "
            "probabilities: set the monitor's reference to a window of the prediction log "
            "('window:7d@-7d') of an endpoint that logs them (deployment setting "
            "log_probabilities, or loopml serve --log-probabilities)."
        )
    metrics = tuple(options.get("metrics") or ("accuracy", "auc"))
    if not current.num_rows:
        raise InsufficientData(
            "estimated_performance needs class probabilities in the current data: none of "
            "its rows has them (does the endpoint log them? deployment setting "
            "log_probabilities, or loopml serve --log-probabilities)."
        )
    return estimate_performance(
        reference,
        current,
        metrics=metrics,
        by=("route",) if context.spec.endpoint else (),
        thresholds=options.get("thresholds"),
        min_rows=int(options.get("min_rows", 100)),
    )


def _with_probabilities(table: pa.Table) -> pa.Table:
    """The rows of ``table`` that have every ``proba_`` column (none when it has none):
    a window of the prediction log also holds requests logged without probabilities."""
    names = [c for c in table.column_names if c.startswith("proba_")]
    if not names:
        return table.slice(0, 0)
    valid = pc.is_valid(table.column(names[0]))
    for name in names[1:]:
        valid = pc.and_(valid, pc.is_valid(table.column(name)))
    return table.filter(valid)


def fairness(context: CheckContext, options: dict[str, Any]) -> list[CheckResult]:
    """Group fairness of the predictions (and of the labels) per sensitive column."""
    from loopml.monitoring._fairness import fairness as judge

    sensitive = options["sensitive"]
    names = [sensitive] if isinstance(sensitive, str) else list(sensitive)
    results: list[CheckResult] = []
    for name in names:
        results += judge(
            context.current.table,
            sensitive=name,
            positive=options.get("positive"),
            thresholds=options.get("thresholds"),
            min_group=int(options.get("min_group", 30)),
        )
    return results


def attribution(context: CheckContext, options: dict[str, Any]) -> list[CheckResult]:
    """How feature attributions moved between the reference and the current window."""
    from loopml.monitoring._attribution import attribution_drift

    if context.model is None:
        raise InsufficientData("attribution needs the model version that answered; none known.")
    model = context.readers.registry.load(
        context.model.ref, project=context.project, trust=context.trust
    )
    columns = context.columns
    return attribution_drift(
        model,
        context.reference.table.select(columns).to_pandas(),
        context.current.table.select(columns).to_pandas(),
        method=str(options.get("method", "auto")),
        ndcg_threshold=float(options.get("ndcg_threshold", 0.9)),
        sample=int(options.get("sample", 2000)),
    )


def data_quality(context: CheckContext, options: dict[str, Any]) -> list[CheckResult]:
    """The reference dataset's saved schema and expectations applied to the served inputs."""
    from loopml.monitoring._quality import data_quality as judge

    against = options.get("dataset")
    if against is None and context.reference.dataset is not None:
        against = context.reference.dataset.ref
    if against is None:
        raise InsufficientData(
            "data_quality needs a dataset whose schema to apply: the reference is not a "
            "dataset version; set the check's 'dataset' option."
        )
    return judge(
        context.readers.data,
        context.current.table,
        against=str(against),
        project=context.project,
        columns=context.columns,
    )


MONITOR_CHECKS: dict[str, Check] = {
    "data_quality": data_quality,
    "drift": drift,
    "multivariate": multivariate,
    "performance": performance,
    "estimated_performance": estimated_performance,
    "fairness": fairness,
    "attribution": attribution,
}
"""Every check a monitor can run, by kind."""
