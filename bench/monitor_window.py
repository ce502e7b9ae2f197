"""Benchmark a stored monitor over a window of the prediction log (issue 14: target <= 5 s at 1M).

Set-up (not timed), in a fresh ``LOOPML_HOME``: a reference dataset of 20 numeric
columns is registered; an endpoint's prediction log receives ``--rows`` predicted rows
(requests of ``--rows-per-request`` rows, the float fast form the server logs, half of
them with a shifted ``f00``) through :class:`~loopml.serving.PredictionLog`, flushed
into Parquet segments; a monitor with the drift check is stored.

Timed: ``loopml.monitoring.run_monitor`` end to end -- read the window through serving's
columnar reader, sketch it, take the reference dataset's sketch (computed on the first
run, cached after: both runs are shown), decide, store the result and its alert.
The drifted column must be the one flagged.

Examples::

    .venv/bin/python bench/monitor_window.py                 # 1,000,000 predicted rows
    .venv/bin/python bench/monitor_window.py --rows 100000
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = [f"f{i:02d}" for i in range(20)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rows-per-request", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ["LOOPML_HOME"] = home
        os.environ.pop("LOOPML_STORE_URI", None)
        os.environ.pop("LOOPML_ARTIFACT_URI", None)
        started = time.perf_counter()
        window = _set_up(Path(home), args.rows, args.rows_per_request)
        print(
            f"set-up: {args.rows:,} predicted rows logged in {time.perf_counter() - started:.1f} s"
        )
        import loopml.monitoring as mon

        for attempt in ("first run (reference sketched)", "second run (reference cached)"):
            started = time.perf_counter()
            result = mon.run_monitor(
                "bench-live", project="bench", since=window[0], until=window[1]
            )
            took = time.perf_counter() - started
            flagged = sorted(c.column for c in result.alerts if c.check == "drift")
            print(
                f"{attempt}: {took:.2f} s for {result.current_rows:,} rows "
                f"(target <= 5 s at 1M); drift flagged {flagged}"
            )
            assert flagged == ["f00"], flagged
    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.1f}"
    )


def _set_up(home: Path, rows: int, per_request: int) -> tuple[str, str]:
    from datetime import datetime, timedelta

    import loopml.data
    from loopml.monitoring import MonitorSpec, create_monitor
    from loopml.serving import PredictionLog, PredictionRecord
    from loopml.serving._payloads import FloatRows
    from loopml.tracking import get_client

    rng = np.random.default_rng(0)
    reference = pd.DataFrame(rng.normal(size=(100_000, len(COLUMNS))), columns=COLUMNS)
    loopml.data.register("bench-train", reference, project="bench")
    client = get_client()
    begin = datetime.now() - timedelta(minutes=1)
    with PredictionLog(
        home / "wal", client.store, client.artifacts, "bench", segment_rows=500
    ) as log:
        log.recover()
        for start in range(0, rows, per_request):
            values = rng.normal(size=(per_request, len(COLUMNS)))
            if start >= rows // 2:
                values[:, 0] += 0.5
            log.append(
                PredictionRecord(
                    f"r{start}",
                    "bench-live",
                    "primary:m/1",
                    "m/1",
                    FloatRows(tuple(COLUMNS), values),
                    [0] * per_request,
                    1.0,
                ),
                wait=False,
            )
    create_monitor(
        MonitorSpec(
            name="bench-live",
            endpoint="bench-live",
            reference="dataset:bench-train:1",
            checks=["drift"],
            sinks=(),
        ),
        project="bench",
    )
    end = datetime.now() + timedelta(minutes=1)
    return begin.isoformat(), end.isoformat()


if __name__ == "__main__":
    main()
