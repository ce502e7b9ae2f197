"""Hostile input to loopml.monitoring: monitor YAML, stored rows and blobs, odd frames.

Each test is a problem found by attacking the feature as an outsider would. Those
whose fix lives in a module another helper owns are ``xfail(strict=True)``: they
pass (and so fail here) the day the fix lands, and the marker must then go.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text, update

from loopml.errors import InvalidParameter, LoopmlError
from loopml.monitoring import MonitorResult, MonitorSpec, MonitorStore, detect_drift
from loopml.monitoring._alert_state import ack_alert, apply_alerts, list_alerts
from loopml.monitoring._results import CheckResult
from loopml.monitoring._spec import spec_from_yaml
from loopml.store import tables
from loopml.tracking import TrackingClient

_BASE = "name: m\nendpoint: credit\n"


@pytest.fixture
def monitors(client: TrackingClient) -> Iterator[MonitorStore]:
    yield MonitorStore(client.store, client.artifacts)


def _result(status: str, checks: list[CheckResult], at: int) -> MonitorResult:
    return MonitorResult(
        monitor="m",
        status=status,  # type: ignore[arg-type]
        started_at=at,
        reference="dataset:credit:1",
        current="frame",
        reference_rows=1000,
        current_rows=500,
        checks=tuple(checks),
    )


def _drift(status: str) -> CheckResult:
    return CheckResult("drift", "age", "ks", 0.3, 0.05, status)  # type: ignore[arg-type]


# -- monitor YAML ---------------------------------------------------------------------


def test_yaml_aliases_are_refused_so_a_small_file_cannot_expand() -> None:
    laughs = "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 9))
    bomb = f"{_BASE}description: &l0 lol\n{laughs}"
    with pytest.raises(InvalidParameter, match=r"aliases \(\*name\) are not allowed"):
        spec_from_yaml(bomb)
    with pytest.raises(InvalidParameter, match="aliases"):
        spec_from_yaml(
            f"{_BASE}checks:\n  drift: {{columns: &c [a]}}\n  fairness: {{sensitive: *c}}\n"
        )


def test_yaml_repeated_keys_deep_nesting_and_errors_are_one_line() -> None:
    with pytest.raises(InvalidParameter, match="the key 'name' appears twice") as repeated:
        spec_from_yaml(f"{_BASE}name: other\n")
    with pytest.raises(InvalidParameter, match="nested too deeply"):
        spec_from_yaml(_BASE + "description: " + "[" * 50_000 + "]" * 50_000)
    with pytest.raises(InvalidParameter, match="not valid YAML") as broken:
        spec_from_yaml("name: [unclosed")
    for error in (repeated, broken):
        assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("description: {a: 1}", "'description'"),
        ("description: 5", "'description'"),
        ('endpoint: "credit\\x00\\n"', "'endpoint'"),
        ('route: "canary\\x1b[2J"', "'route'"),
        ('columns: [age, "a\\x00"]', "'columns'"),
        ("columns: [age, age]", "distinct"),
        ("window: '\u0661d'", "'window'"),  # an Arabic-Indic digit one, which \\d accepts
        ("window: ' 1d'", "'window'"),
        ("window: 999999w", "ten years"),
        ("reference: 'window:999999w@-1d'", "ten years"),
        ('reference: "file:/tmp/\\x1b[2J"', "'reference'"),
        ("min_rows: 1000000000000000000000000", "'min_rows'"),
        ("checks: {drift: {columns: 5}}", "'columns' parameter of check 'drift'"),
        ("checks: {drift: {fdr: x}}", "'fdr' parameter of check 'drift'"),
        ("checks: {drift: {fdr: 0}}", "'fdr'"),
        ("checks: {drift: {tolerances: {age: x}}}", "'tolerances'"),
        ("checks: {drift: {methods: {age: [ks]}}}", "'methods'"),
        ("checks: {multivariate: {sample: 1.0e+12}}", "'sample'"),
        ("checks: {attribution: {sample: true}}", "'sample'"),
        ("checks: {performance: {thresholds: {accuracy: [a, b]}}}", "'thresholds'"),
        ("checks: {fairness: {sensitive: 5}}", "'sensitive'"),
        ("checks: {fairness: {sensitive: [sex], positive: [1]}}", "'positive'"),
        ("checks: {data_quality: {dataset: {a: 1}}}", "'dataset'"),
    ],
)
def test_a_wrong_type_anywhere_is_refused_when_the_monitor_is_read(
    extra: str, expected: str
) -> None:
    key = extra.split(":", 1)[0]
    base = "".join(line + "\n" for line in _BASE.splitlines() if not line.startswith(key))
    with pytest.raises(InvalidParameter, match=expected.replace("[", r"\[")):
        spec_from_yaml(base + extra)


def test_options_a_monitor_really_uses_are_still_accepted() -> None:
    spec = spec_from_yaml(
        _BASE
        + "description: |\n  Watches credit.\n  Owner: risk team.\n"
        + "checks:\n"
        + "  drift: {columns: [age, région], methods: {age: ks}, tolerances: {age: 0.1},"
        + " fdr: 0.1, share: 0.5}\n"
        + "  performance: {metrics: [accuracy], thresholds: {accuracy: ['>=', 0.8]},"
        + " min_labels: 50, task: classification}\n"
        + "  fairness: {sensitive: sex, positive: 1, thresholds: {dpd: 0.1}, min_group: 20}\n"
        + "  attribution: {method: permutation, ndcg_threshold: 0.9, sample: 500}\n"
    )
    assert spec.checks["drift"]["columns"] == ["age", "région"]
    assert MonitorSpec.from_dict(spec.to_dict()) == spec


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["columns", "fdr", "methods", "tolerances"]), st.data()))
def test_drift_options_of_any_shape_are_a_typed_error_or_a_valid_spec(
    options: dict[str, st.DataObject],
) -> None:
    values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
        max_leaves=6,
    )
    drawn = {k: v.draw(values) for k, v in options.items()}
    try:
        spec = MonitorSpec(name="m", endpoint="credit", checks={"drift": drawn})
    except InvalidParameter:
        return
    assert MonitorSpec.from_dict(orjson.loads(orjson.dumps(spec.to_dict()))) == spec


# -- stored rows and blobs ---------------------------------------------------------------


def test_a_tampered_stored_monitor_is_a_typed_error_naming_it(monitors: MonitorStore) -> None:
    monitors.create(MonitorSpec(name="good", endpoint="credit"), project="p")
    bad = monitors.create(MonitorSpec(name="bad", endpoint="credit"), project="p")
    with monitors.store.write() as conn:
        conn.execute(
            update(tables.MONITOR)
            .where(tables.MONITOR.c.id == bad.id)
            .values(spec={**bad.spec.to_dict(), "description": {"x": 1}})
        )
    for read in (lambda: monitors.get("bad", project="p"), lambda: monitors.list(project="p")):
        with pytest.raises(InvalidParameter, match="stored monitor 'bad' of project 'p'"):
            read()
    assert monitors.get("good", project="p").name == "good"


def test_a_result_blob_of_the_wrong_shape_is_a_typed_error(monitors: MonitorStore) -> None:
    record = monitors.create(MonitorSpec(name="m", endpoint="credit"), project="p")
    stored, _ = monitors.record(record, _result("ok", [_drift("ok")], 1000))
    garbage = {**stored.to_dict(), "checks": [1]}
    digest = monitors.artifacts.put_bytes(orjson.dumps(garbage))
    with monitors.store.write() as conn:
        conn.execute(
            update(tables.MONITOR_RESULT)
            .where(tables.MONITOR_RESULT.c.id == stored.id)
            .values(digest=digest)
        )
    with pytest.raises(InvalidParameter, match=f"Monitor result {stored.id} cannot be read"):
        monitors.result(stored.id or 0)


def test_a_result_id_does_not_reach_another_projects_monitor(monitors: MonitorStore) -> None:
    mine = monitors.create(MonitorSpec(name="m", endpoint="credit"), project="p")
    theirs = monitors.create(MonitorSpec(name="m", endpoint="credit"), project="q")
    secret, _ = monitors.record(theirs, _result("ok", [_drift("ok")], 1000))
    with pytest.raises(InvalidParameter, match="No monitor result of monitor 'm' has id"):
        monitors.result(secret.id or 0, monitor=mine)
    with pytest.raises(InvalidParameter, match="'result_id'"):
        monitors.result(-1)
    with pytest.raises(InvalidParameter, match="No monitor result"):
        monitors.result(2**70)


# -- alerts ---------------------------------------------------------------------------


def test_a_second_ack_keeps_the_first_and_adds_its_note(monitors: MonitorStore) -> None:
    record = monitors.create(MonitorSpec(name="m", endpoint="credit"), project="p")
    _, (alert,) = monitors.record(record, _result("alert", [_drift("alert")], 1000))
    first = ack_alert(monitors.store, alert.id, project="p", by="ann", note="looking")
    second = ack_alert(monitors.store, alert.id, project="p", by="bob", note="fixed upstream")
    assert (second.acked_by, second.acked_at) == ("ann", first.acked_at)
    assert second.ack_note == "looking\nbob: fixed upstream"
    for bad in (2**70, 0, True):
        with pytest.raises(InvalidParameter, match="'alert_id'"):
            ack_alert(monitors.store, bad, project="p", by="eve")
    with pytest.raises(InvalidParameter, match="'note'"):
        ack_alert(monitors.store, alert.id, project="p", by="eve", note="\x1b[2Jgone")
    assert list_alerts(monitors.store, project="p")[0].ack_note == second.ack_note


def _blocked_on_a_lock(client: TrackingClient) -> bool:
    with client.store.read() as conn:
        waiting = conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()"
            )
        ).scalar_one()
    return int(waiting) > 0


def test_two_runs_racing_open_one_alert_and_both_are_stored(
    client: TrackingClient, monitors: MonitorStore
) -> None:
    record = monitors.create(MonitorSpec(name="m", endpoint="credit"), project="p")
    first, _ = monitors.record(record, _result("ok", [_drift("ok")], 1000))
    failures: list[BaseException] = []

    def loser() -> None:
        try:
            monitors.record(record, _result("alert", [_drift("alert")], 3000))
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)

    racer = threading.Thread(target=loser)
    with monitors.store.write() as conn:  # the winner, between its check and its commit
        apply_alerts(
            conn,
            record.id,
            "m",
            replace(_result("alert", [_drift("alert")], 2000), id=first.id),
            alert_on_no_data=True,
        )
        racer.start()
        if client.store.uri.startswith("postgresql"):
            deadline = time.monotonic() + 120
            while not _blocked_on_a_lock(client) and time.monotonic() < deadline:
                time.sleep(0.05)
    racer.join(timeout=120)
    assert not racer.is_alive() and failures == []
    assert len(list_alerts(monitors.store, project="p", state="firing")) == 1
    assert [r.started_at for r in monitors.results("m", project="p")] == [3000, 1000]


# -- reports (another helper's module) ----------------------------------------------------


def test_write_report_refuses_a_target_that_is_not_a_regular_file(tmp_path: Path) -> None:
    from loopml.monitoring._report import write_report

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    try:
        with pytest.raises(LoopmlError):
            write_report(_result("ok", [_drift("ok")], 1000), fifo)
    finally:
        assert fifo.is_fifo()


# -- detect_drift on odd frames (another helper's modules) ---------------------------------


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame({"x": rng.normal(size=2000), "c": rng.choice(list("abc"), 2000)})


def test_detect_drift_takes_odd_but_valid_frames(frame: pd.DataFrame) -> None:
    no_data = detect_drift(frame.assign(x=np.nan), frame).checks[0]
    assert (no_data.column, no_data.status) == ("x", "no_data")
    assert detect_drift(frame, frame.iloc[:1]).checks[0].status == "no_data"
    assert detect_drift(frame, frame.assign(c="")).checks
    named = detect_drift(frame.rename(columns={"x": 1}), frame.rename(columns={"x": 1}))
    assert "1" in {c.column for c in named.checks}


def test_detect_drift_names_a_column_of_mixed_types(frame: pd.DataFrame) -> None:
    with pytest.raises(InvalidParameter, match="'x'"):
        detect_drift(frame, frame.assign(x=["a", 1.0] * 1000))


def test_detect_drift_names_duplicate_columns(frame: pd.DataFrame) -> None:
    twice = pd.concat([frame[["x"]], frame[["x"]]], axis=1)
    with pytest.raises(InvalidParameter, match="'x'"):
        detect_drift(twice, twice)


def test_detect_drift_takes_the_largest_finite_floats(frame: pd.DataFrame) -> None:
    report = detect_drift(frame.assign(x=1e308), frame.assign(x=-1e308))
    assert "x" in report.drifted_columns


def test_the_multivariate_check_a_spec_accepts_exists() -> None:
    import importlib

    importlib.import_module("loopml.monitoring._multivariate")


def test_a_stored_file_reference_is_read_only_in_a_trusted_run(tmp_path: Path) -> None:
    from loopml.monitoring import MonitorSpec
    from loopml.monitoring._sources import Data, load_reference

    secret = tmp_path / "secret.csv"
    secret.write_text("x\n1\n2\n")
    spec = MonitorSpec(name="m", endpoint="e", reference=f"file:{secret}")
    with pytest.raises(InvalidParameter, match="trusted run"):
        load_reference(spec, None, project="p", now_ms=0, model=None)  # type: ignore[arg-type]
    read = load_reference(spec, None, project="p", now_ms=0, model=None, trust=True)  # type: ignore[arg-type]
    assert isinstance(read, Data) and read.rows == 2


def test_cron_text_has_five_fields() -> None:
    from loopml.monitoring import MonitorSpec

    for cron in ("0 6 * * * *", "0 6 * * * * 2030", "6 * *"):
        with pytest.raises(InvalidParameter, match="'schedule'"):
            MonitorSpec(name="m", endpoint="e", schedule=cron)
    assert MonitorSpec(name="m", endpoint="e", schedule="@daily").schedule == "@daily"
