"""Stored monitors: configuration, results over time, alert state; SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from loopml.data import DataClient
from loopml.errors import (
    AlertNotFound,
    InvalidParameter,
    MonitorNotFound,
    ProjectNotFound,
)
from loopml.monitoring import MonitorResult, MonitorSpec, MonitorStore, spec_from_yaml
from loopml.monitoring._alert_state import ack_alert, list_alerts
from loopml.monitoring._results import CheckResult
from loopml.monitoring._run import run_monitor
from loopml.monitoring._sources import PredictionWindow, Readers
from loopml.registry._client import RegistryClient
from loopml.tracking import TrackingClient


def _frame(rows: int, seed: int, *, age_shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": np.clip(rng.normal(40, 8, rows) + age_shift, 18, None).round(),
            "income": rng.lognormal(10, 0.4, rows),
            "region": rng.choice(["north", "south", "east"], rows),
        }
    )


@pytest.fixture
def stores(client: TrackingClient) -> Iterator[tuple[MonitorStore, Readers, DataClient]]:
    data = DataClient(client.store, client.artifacts)

    def no_log(*_: object) -> PredictionWindow:
        raise AssertionError("a dataset monitor reads no prediction log")

    readers = Readers(
        client.store, client.artifacts, data, RegistryClient(client.store, client.artifacts), no_log
    )
    yield MonitorStore(client.store, client.artifacts), readers, data


def test_a_spec_names_what_is_wrong() -> None:
    with pytest.raises(InvalidParameter, match="exactly one of 'endpoint' or 'dataset'"):
        MonitorSpec(name="m")
    with pytest.raises(InvalidParameter, match="'window'"):
        MonitorSpec(name="m", endpoint="credit", window="3 days")
    with pytest.raises(InvalidParameter, match="'reference'"):
        MonitorSpec(name="m", endpoint="credit", reference="yesterday")
    with pytest.raises(InvalidParameter, match="did you mean 'drift'"):
        MonitorSpec(name="m", endpoint="credit", checks=["drfit"])
    with pytest.raises(InvalidParameter, match="'schedule'"):
        MonitorSpec(name="m", endpoint="credit", schedule="every monday")
    with pytest.raises(InvalidParameter, match="needs 'sensitive'"):
        MonitorSpec(name="m", endpoint="credit", checks={"fairness": {}})
    with pytest.raises(InvalidParameter, match="has no option 'thresold'"):
        MonitorSpec(name="m", endpoint="credit", checks={"multivariate": {"thresold": 0.6}})
    with pytest.raises(InvalidParameter, match="monitor name"):
        MonitorSpec(name="../etc", endpoint="credit")
    with pytest.raises(InvalidParameter, match="did you mean 'window'"):
        MonitorSpec.from_dict({"name": "m", "endpoint": "e", "windw": "1d"})
    with pytest.raises(InvalidParameter, match="not valid YAML"):
        spec_from_yaml("name: [unclosed")
    with pytest.raises(InvalidParameter, match="mapping of settings"):
        spec_from_yaml("- just a list")


def test_a_spec_round_trips_through_yaml() -> None:
    spec = MonitorSpec(
        name="credit-live",
        endpoint="credit",
        route="canary",
        reference="window:7d@-14d",
        window="6h",
        checks={"drift": {"fdr": 0.01}, "fairness": {"sensitive": ["region"]}},
        schedule="0 6 * * 1",
        sinks=("log", {"webhook": "https://hooks.example.com/x", "format": "slack"}),
    )
    import yaml

    assert spec_from_yaml(yaml.safe_dump(spec.to_dict())) == spec
    assert spec.window_ms == 6 * 3_600_000


def test_monitors_are_stored_listed_replaced_and_deleted(
    stores: tuple[MonitorStore, Readers, DataClient],
) -> None:
    monitors, _, _ = stores
    spec = MonitorSpec(name="credit-live", endpoint="credit")
    created = monitors.create(spec, project="p")
    assert created.spec == spec and created.last_status is None
    with pytest.raises(InvalidParameter, match="already exists"):
        monitors.create(spec, project="p")
    changed = MonitorSpec(name="credit-live", endpoint="credit", window="2h")
    assert monitors.create(changed, project="p", replace=True).spec.window == "2h"
    assert [m.name for m in monitors.list(project="p")] == ["credit-live"]
    with pytest.raises(MonitorNotFound, match="did you mean 'credit-live'"):
        monitors.get("credit-lve", project="p")
    with pytest.raises(ProjectNotFound):
        monitors.list(project="nope")
    assert monitors.delete("credit-live", project="p") == 0
    assert monitors.list(project="p") == []


def _result(monitor: str, status: str, checks: list[CheckResult], at: int) -> MonitorResult:
    return MonitorResult(
        monitor=monitor,
        status=status,  # type: ignore[arg-type]
        started_at=at,
        reference="dataset:credit:1",
        current="frame",
        reference_rows=1000,
        current_rows=500,
        checks=tuple(checks),
    )


def _drift(column: str, status: str, value: float) -> CheckResult:
    return CheckResult("drift", column, "ks", value, 0.05, status)  # type: ignore[arg-type]


def test_alerts_open_once_stay_open_and_resolve(
    stores: tuple[MonitorStore, Readers, DataClient],
) -> None:
    monitors, _, _ = stores
    record = monitors.create(MonitorSpec(name="m", endpoint="credit"), project="p")
    first, opened = monitors.record(
        record, _result("m", "alert", [_drift("age", "alert", 0.3), _drift("x", "ok", 0.01)], 1000)
    )
    assert [(a.column, a.state) for a in opened] == [("age", "firing")]
    second, changed = monitors.record(
        record, _result("m", "alert", [_drift("age", "alert", 0.4), _drift("x", "ok", 0.0)], 2000)
    )
    assert changed == []  # still firing: de-duplicated, one open alert
    firing = list_alerts(monitors.store, project="p", state="firing")
    assert len(firing) == 1 and firing[0].statistic == pytest.approx(0.4)
    assert firing[0].first_result_id == first.id and firing[0].last_result_id == second.id
    acked = ack_alert(monitors.store, firing[0].id, project="p", by="ann", note="looking")
    assert acked.acked_by == "ann" and acked.state == "firing"
    _, resolved = monitors.record(
        record, _result("m", "ok", [_drift("age", "ok", 0.01), _drift("x", "ok", 0.0)], 3000)
    )
    assert [(a.column, a.state) for a in resolved] == [("age", "resolved")]
    _, reopened = monitors.record(
        record, _result("m", "alert", [_drift("age", "alert", 0.5)], 4000)
    )
    assert [a.state for a in reopened] == ["firing"]
    assert len(list_alerts(monitors.store, project="p")) == 2
    with pytest.raises(AlertNotFound):
        ack_alert(monitors.store, 999_999, project="p", by=None)
    history = monitors.history("m", project="p", check="drift", column="age")
    assert [(p.at, p.status) for p in history] == [
        (1000, "alert"),
        (2000, "alert"),
        (3000, "ok"),
        (4000, "alert"),
    ]
    with pytest.raises(InvalidParameter, match="did you mean 'age'"):
        monitors.history("m", project="p", column="aeg")
    latest = monitors.results("m", project="p", limit=1)[0]
    assert latest.started_at == 4000 and latest.checks[0].statistic == pytest.approx(0.5)


def test_a_run_without_enough_data_is_no_data_and_alerts(
    stores: tuple[MonitorStore, Readers, DataClient],
) -> None:
    monitors, readers, data = stores
    data.register("credit", _frame(50, 1), project="p")
    monitors.create(
        MonitorSpec(
            name="q", dataset="credit", reference="dataset:credit:1", checks=["data_quality"]
        ),
        project="p",
    )
    result = run_monitor(monitors, readers, "q", project="p")
    assert result.status == "no_data"
    assert all(c.status == "no_data" and "only 50 rows" in c.message for c in result.checks)
    firing = list_alerts(monitors.store, project="p", state="firing")
    assert [a.check for a in firing] == ["no_data"]


def test_data_quality_judges_new_deliveries_by_the_saved_schema(
    stores: tuple[MonitorStore, Readers, DataClient],
) -> None:
    monitors, readers, data = stores
    data.register("credit", _frame(2000, 1), project="p")
    monitors.create(
        MonitorSpec(
            name="quality",
            dataset="credit",
            reference="dataset:credit:1",
            checks=["data_quality"],
        ),
        project="p",
    )
    bad = _frame(2000, 2)
    bad.loc[:99, "age"] = -500.0
    data.register("credit", bad, project="p")
    result = run_monitor(monitors, readers, "quality", project="p")
    assert result.status == "alert" and result.id is not None
    age = [c for c in result.alerts if c.column == "age"]
    assert age and age[0].detail["failing"] == 100 and age[0].statistic == pytest.approx(0.05)
    assert result.lineage["reference_dataset"] == "credit:1"
    assert result.lineage["current_dataset"] == "credit:2"
    assert [a.column for a in list_alerts(monitors.store, project="p", state="firing")] == ["age"]
    data.register("credit", _frame(2000, 3), project="p")
    fixed = run_monitor(monitors, readers, "quality", project="p")
    assert fixed.status == "ok"
    assert list_alerts(monitors.store, project="p", state="firing") == []
    assert monitors.result(result.id) == result
    assert monitors.get("quality", project="p").last_status == "ok"


def test_a_dataset_monitor_judges_fairness_and_joint_drift(
    stores: tuple[MonitorStore, Readers, DataClient],
) -> None:
    monitors, readers, data = stores
    rng = np.random.default_rng(3)

    def scored(rows: int, biased: bool) -> pd.DataFrame:
        group = rng.choice(["a", "b"], rows)
        x = rng.normal(size=rows)
        y = (x if biased else -x) + rng.normal(scale=0.5, size=rows)
        label = (x + rng.normal(scale=0.3, size=rows) > 0).astype(int)
        chosen = (x > 0) & ~(biased & (group == "b"))  # group b is never selected
        return pd.DataFrame(
            {"x": x, "y": y, "group": group, "prediction": chosen.astype(int), "label": label}
        )

    data.register("scored", scored(3000, biased=False), project="p")
    data.register("scored", scored(3000, biased=True), project="p")
    monitors.create(
        MonitorSpec(
            name="fair",
            dataset="scored",
            reference="dataset:scored:1",
            checks={"fairness": {"sensitive": ["group"]}, "multivariate": {"sample": 2000}},
        ),
        project="p",
    )
    result = run_monitor(monitors, readers, "fair", project="p")
    fairness = {c.method: c for c in result.checks if c.check == "fairness" and not c.segment}
    assert fairness["demographic_parity_ratio"].status == "alert"
    joint = [c for c in result.checks if c.check == "multivariate_drift"]
    assert [c.status for c in joint] == ["alert"]  # x and y: same marginals, flipped relation
    assert result.status == "alert"
