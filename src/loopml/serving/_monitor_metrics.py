"""The latest monitor results of the endpoints a server serves, as Prometheus metrics.

Appended to ``/metrics``: for every monitor that watches one of the served
endpoints, its latest run's status, its firing alerts, and the drift statistic of
at most :data:`MAX_COLUMNS` columns (the largest effects first), so the number of
series stays bounded whatever the width of the data. Monitors are written by
``loopml.monitoring`` into the metadata store; this module only reads those rows
(serving sits below monitoring and does not import it). The text is cached for
:data:`CACHE_SECONDS`, so scrapes cost at most one query every few seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from loopml.store import Store, tables

__all__ = ["CACHE_SECONDS", "MAX_COLUMNS", "MonitorMetrics"]

MAX_COLUMNS = 20
"""Most drift columns exposed per monitor."""

CACHE_SECONDS = 10.0
"""How long a rendering is reused."""

_STATUS_VALUES = {"ok": 0.0, "alert": 1.0, "no_data": 2.0}


class MonitorMetrics:
    """Prometheus text of the latest monitor results of some endpoints.

    Args:
        store: The metadata store.
        endpoints: Returns the endpoint names served now.
    """

    def __init__(self, store: Store, endpoints: Any) -> None:
        self._store = store
        self._endpoints = endpoints
        self._lock = threading.Lock()
        self._cached: tuple[float, bytes] | None = None

    def render(self) -> bytes:
        """The metrics text (empty when no monitor watches a served endpoint)."""
        with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < CACHE_SECONDS:
                return self._cached[1]
            registry = CollectorRegistry()
            registry.register(_Collector(_latest(self._store, list(self._endpoints()))))
            text = generate_latest(registry)
            self._cached = (now, text)
            return text


class _Collector(Collector):
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self._rows = rows

    def collect(self) -> Iterable[GaugeMetricFamily]:
        status = GaugeMetricFamily(
            "loopml_monitor_status",
            "Latest run of a monitor: 0 ok, 1 alert, 2 no data.",
            labels=["monitor", "endpoint"],
        )
        firing = GaugeMetricFamily(
            "loopml_monitor_alerts_firing",
            "Alerts of a monitor that are firing now.",
            labels=["monitor", "endpoint"],
        )
        drift = GaugeMetricFamily(
            "loopml_monitor_drift",
            f"Drift effect size per column in a monitor's latest run (top {MAX_COLUMNS}).",
            labels=["monitor", "endpoint", "column", "method"],
        )
        last_run = GaugeMetricFamily(
            "loopml_monitor_last_run_timestamp_seconds",
            "When a monitor's latest run started.",
            labels=["monitor", "endpoint"],
        )
        for row in self._rows:
            labels = [row["monitor"], row["endpoint"]]
            status.add_metric(labels, _STATUS_VALUES.get(row["status"], 2.0))
            firing.add_metric(labels, float(row["firing"]))
            last_run.add_metric(labels, row["started_at"] / 1000)
            for column, method, value in row["drift"]:
                drift.add_metric([*labels, column, method], value)
        yield from (status, firing, drift, last_run)


def _latest(store: Store, endpoints: Sequence[str]) -> list[dict[str, Any]]:
    if not endpoints:
        return []
    monitor, result = tables.MONITOR, tables.MONITOR_RESULT
    check, alert = tables.MONITOR_CHECK, tables.MONITOR_ALERT
    rows: list[dict[str, Any]] = []
    with store.read() as conn:
        watched = [
            (int(m.id), str(m.name), str(m.spec.get("endpoint")))
            for m in conn.execute(select(monitor.c.id, monitor.c.name, monitor.c.spec))
            if isinstance(m.spec, dict) and m.spec.get("endpoint") in endpoints
        ]
        for monitor_id, name, endpoint in watched:
            latest = conn.execute(
                select(result.c.id, result.c.status, result.c.started_at)
                .where(result.c.monitor_id == monitor_id)
                .order_by(result.c.started_at.desc(), result.c.id.desc())
                .limit(1)
            ).first()
            if latest is None:
                continue
            drift = conn.execute(
                select(check.c.column, check.c.method, check.c.statistic)
                .where(
                    check.c.result_id == latest.id,
                    check.c.check == "drift",
                    check.c.statistic.is_not(None),
                )
                .order_by(check.c.statistic.desc())
                .limit(MAX_COLUMNS)
            ).all()
            firing = conn.execute(
                select(func.count())
                .select_from(alert)
                .where(alert.c.monitor_id == monitor_id, alert.c.state == "firing")
            ).scalar_one()
            rows.append(
                {
                    "monitor": name,
                    "endpoint": endpoint,
                    "status": str(latest.status),
                    "started_at": int(latest.started_at),
                    "firing": int(firing),
                    "drift": [(str(c), str(m), float(v)) for c, m, v in drift],
                }
            )
    return rows
