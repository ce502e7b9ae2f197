"""Projects at a glance: how many runs, datasets, models and endpoints each has, and when
anything last happened in it."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, case, func, select

from loopml.store import tables

__all__ = ["ProjectSummary", "project_summaries"]

_project = tables.PROJECT
_run = tables.RUN
_dataset = tables.DATASET
_dataset_version = tables.DATASET_VERSION
_model = tables.MODEL
_model_version = tables.MODEL_VERSION
_deployment = tables.DEPLOYMENT
_revision = tables.DEPLOYMENT_REVISION


@dataclass(frozen=True)
class ProjectSummary:
    """What a project holds.

    Attributes:
        name: the project.
        runs: live runs (not deleted), every kind.
        deleted_runs: soft-deleted runs ``loopml gc`` has not removed yet.
        datasets: datasets with a version that is not deleted.
        models: registered models.
        endpoints: deployment endpoints.
        last_activity: newest time (epoch ms) anything was recorded in it: a run
            started, sent a heartbeat or ended, a dataset or model version was
            saved, an endpoint was (re)deployed; the project's creation otherwise.
    """

    name: str
    runs: int
    deleted_runs: int
    datasets: int
    models: int
    endpoints: int
    last_activity: int | None


def project_summaries(conn: Connection) -> list[ProjectSummary]:
    """Return a summary of every project, sorted by name (a few grouped queries)."""
    counts: dict[str, dict[Any, int]] = defaultdict(dict)
    latest: dict[Any, int] = {}

    def newer(project_id: Any, *times: int | None) -> None:
        for when in times:
            if when is not None and when > latest.get(project_id, -1):
                latest[project_id] = int(when)

    live = func.sum(_count_if(_run.c.deleted_at.is_(None)))
    gone = func.sum(_count_if(_run.c.deleted_at.is_not(None)))
    for project_id, runs, deleted, started, beat, ended in conn.execute(
        select(
            _run.c.project_id,
            live,
            gone,
            func.max(_run.c.start_time),
            func.max(_run.c.heartbeat_at),
            func.max(_run.c.end_time),
        ).group_by(_run.c.project_id)
    ):
        counts["runs"][project_id] = int(runs or 0)
        counts["deleted_runs"][project_id] = int(deleted or 0)
        newer(project_id, started, beat, ended)
    for key, owner, child, owner_key in (
        ("datasets", _dataset, _dataset_version, "dataset_id"),
        ("models", _model, _model_version, "model_id"),
        ("endpoints", _deployment, _revision, "deployment_id"),
    ):
        for project_id, number, created in conn.execute(
            select(owner.c.project_id, func.count(), func.max(owner.c.created_at)).group_by(
                owner.c.project_id
            )
        ):
            if key != "datasets":
                counts[key][project_id] = int(number)
            newer(project_id, created)
        for project_id, created in conn.execute(
            select(owner.c.project_id, func.max(child.c.created_at))
            .join(child, child.c[owner_key] == owner.c.id)
            .group_by(owner.c.project_id)
        ):
            newer(project_id, created)
    # A dataset whose versions are all deleted holds nothing usable: not counted.
    for project_id, number in conn.execute(
        select(_dataset.c.project_id, func.count(func.distinct(_dataset.c.id)))
        .join(_dataset_version, _dataset_version.c.dataset_id == _dataset.c.id)
        .where(_dataset_version.c.deleted_at.is_(None))
        .group_by(_dataset.c.project_id)
    ):
        counts["datasets"][project_id] = int(number)
    summaries = []
    for project_id, name, created in conn.execute(
        select(_project.c.id, _project.c.name, _project.c.created_at)
    ):
        newer(project_id, created)
        summaries.append(
            ProjectSummary(
                name=name,
                runs=counts["runs"].get(project_id, 0),
                deleted_runs=counts["deleted_runs"].get(project_id, 0),
                datasets=counts["datasets"].get(project_id, 0),
                models=counts["models"].get(project_id, 0),
                endpoints=counts["endpoints"].get(project_id, 0),
                last_activity=latest.get(project_id),
            )
        )
    return sorted(summaries, key=lambda summary: summary.name)


def _count_if(condition: Any) -> Any:
    return case((condition, 1), else_=0)
