"""Model cards: what the registry knows about one version, as Markdown or one HTML page.

A card is built only from stored records: the model's user-written intended use
and limitations, the training data versions (size, validation status, a few
profile statistics), the latest evaluation's policy results (metrics, the
bootstrap interval of the improvement over the champion, fairness per group),
approvals, lineage, and how to load the version. Nothing is recomputed.

Example:
    >>> card = build_card(registry, "credit/3", project="p")   # doctest: +SKIP
    >>> Path("credit-3.html").write_text(card.to_html())       # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from loopml.store import Node, tables, walk

if TYPE_CHECKING:
    from loopml.data import DatasetVersion
    from loopml.registry._client import RegistryClient
    from loopml.registry._records import ModelVersion, PolicyResult

__all__ = [
    "CardCheck",
    "CardDataset",
    "CardFairness",
    "CardLineage",
    "CardMetric",
    "ModelCard",
    "build_card",
]

_PROFILE_COLUMNS = 5
_NOT_WRITTEN = "Not written yet."
_NO_REQUIREMENTS = "Not recorded: the version was registered before loopml captured requirements."


@dataclass(frozen=True)
class CardDataset:
    """A training dataset version as the card shows it.

    ``stats`` are ``(column, summary)`` pairs for the first few columns; ``found``
    is False when the version named by the model no longer resolves.
    """

    ref: str
    found: bool
    rows: int | None = None
    columns: int | None = None
    status: str | None = None
    report: str = "not checked"
    stats: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class CardMetric:
    """One metric value; ``low``/``high`` bound the improvement over the champion.

    ``source`` says where the value comes from (``evaluation on DATA`` or ``training
    run``); ``improvement`` is the candidate minus the champion (positive is better)
    with its confidence interval, when a bootstrap comparison stored one.
    """

    name: str
    value: float | None
    source: str
    improvement: float | None = None
    low: float | None = None
    high: float | None = None
    confidence: float | None = None
    value_low: float | None = None
    value_high: float | None = None

    @property
    def has_interval(self) -> bool:
        """Whether a confidence interval is known."""
        return self.low is not None and self.high is not None


@dataclass(frozen=True)
class CardFairness:
    """The positive-prediction rate of one group of a sensitive column."""

    check: str
    sensitive: str
    group: str
    rate: float
    difference: float | None
    bound: float | None
    passed: bool


@dataclass(frozen=True)
class CardCheck:
    """One stored policy check outcome."""

    name: str
    kind: str
    passed: bool
    reason: str


@dataclass(frozen=True)
class CardLineage:
    """One lineage edge upstream of the version, with readable ends."""

    source: str
    relation: str
    target: str
    depth: int


@dataclass(frozen=True)
class ModelCard:
    """The sections of a model card for one version.

    Render with :meth:`to_markdown` or :meth:`to_html`; every value comes from the
    registry, the data service and the lineage graph.
    """

    name: str
    version: int
    project: str
    status: str
    flavor: str
    aliases: tuple[str, ...]
    description: str | None
    registered_by: str | None
    created_at: int
    source_run_id: str | None
    git_commit: str | None
    intended_use: str | None
    limitations: str | None
    params: dict[str, Any]
    inputs: tuple[tuple[str, str], ...]
    training_data: tuple[CardDataset, ...]
    metrics: tuple[CardMetric, ...]
    metrics_note: str
    evaluation: str | None
    fairness: tuple[CardFairness, ...]
    checks: tuple[CardCheck, ...]
    approvals: tuple[tuple[str, str | None], ...]
    lineage: tuple[CardLineage, ...]
    how_to_load: tuple[str, ...] = field(default_factory=tuple)
    requirements: tuple[str, ...] | None = None

    @property
    def ref(self) -> str:
        """``name/version``."""
        return f"{self.name}/{self.version}"

    @property
    def policy_passed(self) -> bool | None:
        """Whether the latest evaluation passed every check (None: never evaluated)."""
        return all(c.passed for c in self.checks) if self.checks else None

    def to_markdown(self) -> str:
        """Return the card as a Markdown document."""
        return "\n".join(_markdown(self)) + "\n"

    def to_html(self) -> str:
        """Return the card as one self-contained HTML page.

        The CSS is inline; the page loads nothing from the network and runs no script.
        Every value (user-written text included) is HTML-escaped.
        """
        import jinja2  # only the HTML rendering needs it

        text = (
            resources.files("loopml.registry")
            .joinpath("templates", "model_card.html.j2")
            .read_text(encoding="utf-8")
        )
        env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
        env.filters["num"] = fmt_number
        env.filters["when"] = _when
        return env.from_string(text).render(
            card=self, not_written=_NOT_WRITTEN, requirements_unknown=_NO_REQUIREMENTS
        )


def build_card(client: RegistryClient, ref: str, project: str) -> ModelCard:
    """Collect the card of version ``ref`` from what the registry knows.

    Args:
        client: the registry.
        ref: ``name/N``, ``name@alias`` or ``name`` (latest usable version).
        project: the project.

    Returns:
        The card.

    Raises:
        ModelNotFound: no such model, version or alias.
    """
    version = client.get_version(ref, project=project)
    model = client.get_model(version.name, project=project)
    results = client.policy_results(version)
    metrics, note = _metrics(version, results, client.evaluation_metrics(version))
    return ModelCard(
        name=version.name,
        version=version.version,
        project=version.project,
        status=version.status,
        flavor=version.flavor,
        aliases=version.aliases,
        description=version.description or model.description,
        registered_by=version.registered_by,
        created_at=version.created_at,
        source_run_id=version.source_run_id,
        git_commit=version.git_commit,
        intended_use=model.intended_use,
        limitations=model.limitations,
        params=dict(version.params),
        inputs=tuple((c.name, c.type) for c in version.signature.inputs)
        if version.signature is not None
        else (),
        training_data=tuple(_dataset(client, r, project) for r in version.datasets),
        metrics=metrics,
        metrics_note=note,
        evaluation=_evaluation(results),
        fairness=_fairness(results),
        checks=tuple(
            CardCheck(r.name, r.kind, r.passed, r.reason)
            for r in results
            if r.kind not in ("none", "evaluation")
        ),
        approvals=tuple(client.approvals_of(version)),
        lineage=_lineage(client, version),
        how_to_load=_how_to_load(version),
        requirements=version.requirements,
    )


# -- sections --------------------------------------------------------------------------


def _dataset(client: RegistryClient, ref: str, project: str) -> CardDataset:
    from loopml.data import DataClient

    try:
        found = DataClient(client.store, client.artifacts).get_version(ref, project=project)
    except LookupError:  # DatasetNotFound: deleted or renamed since training
        return CardDataset(ref, found=False)
    return CardDataset(
        ref=found.ref,
        found=True,
        rows=found.row_count,
        columns=found.column_count,
        status=found.status,
        report=_report_word(found),
        stats=_profile_stats(found),
    )


def _report_word(version: DatasetVersion) -> str:
    if version.report_passed is None:
        return "not checked"
    return "passed" if version.report_passed else "failed"


def _profile_stats(version: DatasetVersion) -> tuple[tuple[str, str], ...]:
    stats: list[tuple[str, str]] = []
    for column in list(version.profile.columns.values())[:_PROFILE_COLUMNS]:
        parts = [column.arrow_type, f"{column.missing} missing"]
        if column.mean is not None:
            parts.append(f"mean {fmt_number(column.mean)}")
        if isinstance(column.min, float | int) and isinstance(column.max, float | int):
            parts.append(f"range {fmt_number(column.min)} to {fmt_number(column.max)}")
        elif column.top_k:
            parts.append(f"most frequent {column.top_k[0][0]!r}")
        stats.append((column.name, ", ".join(parts)))
    return tuple(stats)


def _metrics(
    version: ModelVersion, results: list[PolicyResult], evaluated: dict[str, dict[str, Any]]
) -> tuple[tuple[CardMetric, ...], str]:
    """Metrics of the latest evaluation (with intervals when a bootstrap stored one),
    then the source run's metrics."""
    found: dict[str, CardMetric] = {}
    for result in results:
        details = result.details
        metric = details.get("metric")
        if not isinstance(metric, str):
            continue
        source = f"evaluation on {result.dataset}" if result.dataset else "evaluation"
        known = found.get(metric)
        if result.kind == "metric_threshold" and _is_number(details.get("value")):
            found[metric] = CardMetric(
                metric,
                float(details["value"]),
                source,
                *(
                    (known.improvement, known.low, known.high, known.confidence)
                    if known
                    else (None, None, None, None)
                ),
            )
        elif result.kind == "beats_champion" and _is_number(details.get("improvement_low")):
            found[metric] = CardMetric(
                metric,
                known.value if known else None,
                known.source if known else source,
                _float(details.get("improvement")),
                _float(details.get("improvement_low")),
                _float(details.get("improvement_high")),
                _float(details.get("confidence")),
            )
    source = (
        f"evaluation on {results[0].dataset}" if results and results[0].dataset else "evaluation"
    )
    for metric, stats in evaluated.items():
        known = found.get(metric)
        found[metric] = CardMetric(
            metric,
            _float(stats.get("value")),
            source,
            known.improvement if known else None,
            known.low if known else None,
            known.high if known else None,
            known.confidence if known else _float(stats.get("confidence")),
            _float(stats.get("low")),
            _float(stats.get("high")),
        )
    rows = list(found.values())
    for name, value in sorted(version.metrics.items()):
        if _is_number(value):
            rows.append(CardMetric(name, float(value), "training run"))
    if any(m.value_low is not None for m in rows):
        note = (
            "Evaluation metrics carry 95% percentile-bootstrap intervals over the evaluation "
            "rows; improvements over the champion come from the paired bootstrap of the "
            "beats-champion check; training-run values are point estimates."
        )
    elif any(m.has_interval for m in rows):
        note = (
            "Intervals bound the improvement over the champion (candidate minus champion, "
            "positive is better), from the paired bootstrap of the beats-champion check; "
            "other values are point estimates without a confidence interval."
        )
    elif rows:
        note = (
            "No confidence intervals: no evaluation compared this version with a champion "
            "by bootstrap, so every value is a point estimate."
        )
    else:
        note = "No metrics: the version has no source run and was never evaluated."
    return tuple(rows), note


def _evaluation(results: list[PolicyResult]) -> str | None:
    if not results:
        return None
    first = results[0]
    on = f" on {first.dataset}" if first.dataset else ""
    return f"evaluation {first.evaluation}{on}, {_when(first.evaluated_at)}"


def _fairness(results: list[PolicyResult]) -> tuple[CardFairness, ...]:
    rows: list[CardFairness] = []
    for result in results:
        per_group = result.details.get("per_group")
        if result.kind != "fairness" or not isinstance(per_group, dict):
            continue
        for group, rate in per_group.items():
            if _is_number(rate):
                rows.append(
                    CardFairness(
                        check=result.name,
                        sensitive=str(result.details.get("sensitive", "")),
                        group=str(group),
                        rate=float(rate),
                        difference=_float(result.details.get("value")),
                        bound=_float(result.details.get("max")),
                        passed=result.passed,
                    )
                )
    return tuple(rows)


def _lineage(client: RegistryClient, version: ModelVersion) -> tuple[CardLineage, ...]:
    with client.store.read() as conn:
        edges = walk(conn, Node("model_version", str(version.id)), "upstream")
        labels = _labels(conn, {e.src for e in edges} | {e.dst for e in edges})
    return tuple(
        CardLineage(
            labels.get(e.src, _plain(e.src)), e.relation, labels.get(e.dst, _plain(e.dst)), e.depth
        )
        for e in edges
    )


def _plain(node: Node) -> str:
    ident = node.id[:8] if node.kind == "run" else node.id
    return f"{node.kind.replace('_', ' ')} {ident}"


def _labels(conn: Any, nodes: set[Node]) -> dict[Node, str]:
    """Readable names: ``dataset breast-cancer:1``, ``model credit/3``."""
    labels: dict[Node, str] = {}
    dataset_ids = [int(n.id) for n in nodes if n.kind == "dataset_version" and n.id.isdigit()]
    if dataset_ids:
        dv, ds = tables.DATASET_VERSION, tables.DATASET
        rows = conn.execute(
            select(dv.c.id, ds.c.name, dv.c.version)
            .join(ds, ds.c.id == dv.c.dataset_id)
            .where(dv.c.id.in_(dataset_ids))
        )
        for row in rows:
            labels[Node("dataset_version", str(row.id))] = f"dataset {row.name}:{row.version}"
    model_ids = [int(n.id) for n in nodes if n.kind == "model_version" and n.id.isdigit()]
    if model_ids:
        mv, m = tables.MODEL_VERSION, tables.MODEL
        rows = conn.execute(
            select(mv.c.id, m.c.name, mv.c.version)
            .join(m, m.c.id == mv.c.model_id)
            .where(mv.c.id.in_(model_ids))
        )
        for row in rows:
            labels[Node("model_version", str(row.id))] = f"model {row.name}/{row.version}"
    return labels


def _how_to_load(version: ModelVersion) -> tuple[str, ...]:
    project = version.project
    return (
        "import loopml",
        f'model = loopml.models.load("{version.ref}", project="{project}")',
        "predictions = model.predict(frame)  # checked against the signature",
        "",
        f"# loopml models show {version.ref} --project {project}",
        f"# loopml models card {version.ref} --project {project} --html",
    )


# -- rendering ---------------------------------------------------------------------------


def fmt_number(value: object) -> str:
    """A number with 4 significant digits; ``-`` for None."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def _when(epoch_ms: int | None) -> str:
    if epoch_ms is None:
        return "-"
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _cell(text: object) -> str:
    """A Markdown table cell: pipes escaped, one line."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _interval(metric: CardMetric) -> str:
    if metric.value_low is not None and metric.value_high is not None:
        return f"value CI {fmt_number(metric.value_low)} to {fmt_number(metric.value_high)}" + (
            f"; improvement {_improvement(metric)}" if metric.has_interval else ""
        )
    if not metric.has_interval:
        return "-"
    return _improvement(metric)


def _improvement(metric: CardMetric) -> str:
    level = f"{metric.confidence:.0%} " if metric.confidence else ""
    return (
        f"{fmt_number(metric.improvement)} ({level}CI {fmt_number(metric.low)} to "
        f"{fmt_number(metric.high)})"
    )


def _markdown(card: ModelCard) -> list[str]:
    aliases = ", ".join(f"@{a}" for a in card.aliases) or "none"
    lines = [
        f"# Model card: {card.ref}",
        "",
        f"- Project: {card.project}",
        f"- Status: {card.status}; aliases: {aliases}",
        f"- Flavor: {card.flavor}",
        f"- Registered by {card.registered_by or 'unknown'} on {_when(card.created_at)}",
        f"- Source run: {card.source_run_id or 'none'}; commit: {card.git_commit or 'unknown'}",
    ]
    if card.description:
        lines.append(f"- Description: {card.description}")
    lines += ["", "## Intended use", "", card.intended_use or _NOT_WRITTEN]
    lines += ["", "## Limitations", "", card.limitations or _NOT_WRITTEN]
    lines += ["", "## Training data", ""]
    if not card.training_data:
        lines.append("No training dataset versions are recorded (no source run with inputs).")
    for data in card.training_data:
        if not data.found:
            lines.append(f"- {data.ref}: no longer found")
            continue
        lines.append(
            f"- **{data.ref}**: {data.rows} rows, {data.columns} columns, {data.status}, "
            f"validation {data.report}"
        )
        lines += [f"  - {name}: {summary}" for name, summary in data.stats]
    lines += ["", "## Metrics", ""]
    if card.evaluation:
        lines += [f"Latest {card.evaluation}.", ""]
    if card.metrics:
        lines += [
            "| metric | value | source | 95% intervals (value; improvement over champion) |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {_cell(m.name)} | {fmt_number(m.value)} | {_cell(m.source)} | {_interval(m)} |"
            for m in card.metrics
        ]
        lines.append("")
    lines.append(card.metrics_note)
    lines += ["", "## Fairness", ""]
    if card.fairness:
        lines += ["| check | group | positive rate | difference | bound | passed |"]
        lines += ["|---|---|---|---|---|---|"]
        lines += [
            f"| {_cell(f.check)} | {_cell(f.sensitive)}={_cell(f.group)} | {fmt_number(f.rate)} "
            f"| {fmt_number(f.difference)} | {fmt_number(f.bound)} "
            f"| {'yes' if f.passed else 'no'} |"
            for f in card.fairness
        ]
    else:
        lines.append("No fairness check in the latest evaluation.")
    lines += ["", "## Policy results", ""]
    if card.checks:
        lines += ["| check | kind | result | reason |", "|---|---|---|---|"]
        lines += [
            f"| {_cell(c.name)} | {c.kind} | {'pass' if c.passed else 'FAIL'} | {_cell(c.reason)} |"
            for c in card.checks
        ]
    else:
        lines.append("Not evaluated against a promotion policy.")
    lines += ["", "## Approvals", ""]
    if card.approvals:
        lines += [f"- {who}" + (f" (role {role})" if role else "") for who, role in card.approvals]
    else:
        lines.append("No approvals.")
    lines += ["", "## Lineage", ""]
    if card.lineage:
        lines += [f"- {e.source} --{e.relation}--> {e.target}" for e in card.lineage]
    else:
        lines.append("No lineage recorded.")
    lines += ["", "## How to load", "", "```python", *card.how_to_load, "```"]
    if card.inputs:
        shown = ", ".join(f"{n} ({t})" for n, t in card.inputs[:8])
        more = f" and {len(card.inputs) - 8} more" if len(card.inputs) > 8 else ""
        lines += ["", f"Inputs ({len(card.inputs)} columns): {shown}{more}."]
    lines += ["", "## Requirements", ""]
    if card.requirements is None:
        lines.append(_NO_REQUIREMENTS)
    else:
        lines += [
            "Pinned when the version was registered "
            f"(`loopml models requirements {card.ref}` writes them as a requirements.txt):",
            "",
            "```text",
            *card.requirements,
            "```",
        ]
    return lines
