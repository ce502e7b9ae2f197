"""Prometheus metrics of the inference server, in a registry of its own per app.

Served at ``/metrics`` in the Prometheus text format. Every series is labelled by
``endpoint`` and, once a route is chosen, by ``route`` (``primary:credit@champion``)
and ``model_version`` (``credit/7``), so a canary's latency and errors can be read
beside the primary's. A registry per app (not prometheus_client's global one)
keeps two apps in one process, as in tests, from sharing counts.

Under ``loopml serve --workers N`` every worker is a process of its own and a
scrape reaches one of them, so the counts must be summed across them:
``loopml serve`` then points prometheus_client's multiprocess mode at a fresh
folder (``PROMETHEUS_MULTIPROC_DIR``, unless already set), each worker's values
live in files there, and :meth:`ServerMetrics.render` adds up every worker's. The
queue depth is summed over live workers, the revision is the highest a live
worker serves, and a worker that stops takes its gauges with it
(:meth:`ServerMetrics.close`); its counts stay.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE", "SHARED_FOLDER_VARIABLE", "ServerMetrics"]

SHARED_FOLDER_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus_client's variable: when set, values are kept in files there, per process."""

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The Content-Type of :meth:`ServerMetrics.render`."""

_LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384)
_ROUTED = ("endpoint", "route", "model_version")


class ServerMetrics:
    """The server's counters, histograms and gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._shared_folder = os.environ.get(SHARED_FOLDER_VARIABLE)
        self.requests = Counter(
            "loopml_requests",
            "Prediction requests answered, by HTTP status.",
            (*_ROUTED, "status"),
            registry=self.registry,
        )
        self.errors = Counter(
            "loopml_request_errors",
            "Requests answered with an error, by error code (invalid_input, overloaded …).",
            ("endpoint", "code"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "loopml_request_latency_seconds",
            "Time from a prediction request's arrival to its answer.",
            _ROUTED,
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.model_seconds = Histogram(
            "loopml_model_call_seconds",
            "Time of one model call (a whole micro-batch), input checks included; "
            "the rest of a request's latency is queueing, routing and logging.",
            _ROUTED,
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_rows = Histogram(
            "loopml_batch_size_rows",
            "Rows per model call (micro-batches gather concurrent requests).",
            _ROUTED,
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.batch_requests = Histogram(
            "loopml_batch_size_requests",
            "Requests per model call.",
            _ROUTED,
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "loopml_queue_depth",
            "Requests waiting for a model call.",
            _ROUTED,
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.shadow_dropped = Counter(
            "loopml_shadow_dropped",
            "Shadow copies not predicted because the shadow's queue was full.",
            _ROUTED,
            registry=self.registry,
        )
        self.swaps = Counter(
            "loopml_model_swaps",
            "Deployment revisions or alias moves the server switched to.",
            ("endpoint",),
            registry=self.registry,
        )
        self.swap_failures = Counter(
            "loopml_model_swap_failures",
            "New revisions the server could not load or warm up (it kept the old one).",
            ("endpoint",),
            registry=self.registry,
        )
        self.revision = Gauge(
            "loopml_deployment_revision",
            "The deployment revision being served.",
            ("endpoint",),
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.log_set_aside_files = Counter(
            "loopml_prediction_log_set_aside_files",
            "Prediction-log files moved to quarantine/ because not all of them could be read.",
            registry=self.registry,
        )
        self.log_set_aside_bytes = Counter(
            "loopml_prediction_log_set_aside_bytes",
            "Bytes of those files that could not be logged (unreadable or ill-formed records).",
            registry=self.registry,
        )

    def render(self) -> bytes:
        """Every metric in the Prometheus text exposition format (every worker's, summed)."""
        if self._shared_folder is None:
            return generate_latest(self.registry)
        every_worker = CollectorRegistry()
        multiprocess.MultiProcessCollector(every_worker, path=self._shared_folder)  # type: ignore[no-untyped-call]
        return generate_latest(every_worker)

    def close(self) -> None:
        """Withdraw this process's gauges from the workers' shared figures (it stops)."""
        if self._shared_folder is not None:
            multiprocess.mark_process_dead(os.getpid(), path=self._shared_folder)  # type: ignore[no-untyped-call]
