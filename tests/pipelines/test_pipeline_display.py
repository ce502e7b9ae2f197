"""How pipeline runs show: a one-line repr with step counts, an escaped HTML table."""

from __future__ import annotations

import dataclasses

import pytest
from lp_project import flows

from display_support import check_html, check_repr
from loopml.errors import StepFailed
from loopml.pipelines import get_pipeline_run, list_pipeline_runs


def test_a_pipeline_runs_repr_is_short_and_its_html_lists_the_steps(fluent_store: str) -> None:
    run = flows.chain.run(params={"n": 4, "factor": 3}, max_workers=2)

    assert len(repr(dataclasses.asdict(run))) > 1000  # what the default repr printed
    count = len(run.steps)
    check_repr(repr(run), f"<PipelineRun {run.id[:8]} chain finished steps: {count} finished>")
    text = check_html(run._repr_html_(), f"PipelineRun {run.id}", "chain", f"Steps ({count})")
    assert {"factor", "3", *run.steps} <= set(text)
    assert get_pipeline_run(run.id) == get_pipeline_run(run.id)  # equality untouched


def test_a_failed_pipeline_runs_repr_counts_the_failed_step(
    fluent_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LP_PROJECT_FAIL", "1")
    with pytest.raises(StepFailed):
        flows.failing.run(params={"n": 3}, max_workers=1)
    [run] = list_pipeline_runs()

    check_repr(repr(run), f"<PipelineRun {run.id[:8]} failing failed steps: ", "1 failed")
    text = check_html(run._repr_html_(), "failed")
    assert any("fragile refuses" in t for t in text)
