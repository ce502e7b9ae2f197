"""How a Run shows: a one-line repr and an escaped HTML table for notebooks."""

from __future__ import annotations

import dataclasses

import pytest

import loopml
from display_support import EVIL, check_html, check_repr


def test_a_runs_repr_is_one_short_line_and_its_html_an_escaped_table(fluent_store: str) -> None:
    name = EVIL[:200]  # run names are limited to 250 characters
    with (
        pytest.raises(RuntimeError),
        loopml.start_run(name=name, project="p", params={"C": 1.0, "note": EVIL}) as active,
    ):
        loopml.log_metric("accuracy", 0.93)
        loopml.set_tag("evil", EVIL)
        raise RuntimeError(EVIL)
    run = loopml.get_run(active.id)

    assert len(repr(dataclasses.asdict(run))) > 1000  # what the default repr printed
    check_repr(repr(run), f"<Run {run.id[:8]} '<script>", " failed ", "params=2 metrics=1>")
    text = check_html(run._repr_html_(), f"Run {run.id}", "failed", "accuracy", "0.93", "C")
    assert any(t.startswith("builtins.RuntimeError: <script>") for t in text)
    assert sum(t.startswith("<script>alert") for t in text) == 3  # name, param, tag


def test_display_keeps_dataclass_equality(fluent_store: str) -> None:
    with loopml.start_run(name="a") as active:
        pass
    assert loopml.get_run(active.id) == loopml.get_run(active.id)
