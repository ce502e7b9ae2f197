"""Benchmark ``loopml serve`` against the raw in-process predict and ``mlflow models serve``.

One invocation trains a 100-tree random forest on 20 float features once, times
scikit-learn's own ``predict`` in this process (the floor: no HTTP, no checks, no
logging), then serves the same fitted forest with each server in turn, one at a
time, and drives it from a separate client process (``workers/http_load.py``):

* single-row requests in a closed loop at concurrency 1 and 16: p50/p99 latency
  and answers per second;
* one 10,000-row request, repeated one after the other: the median latency.

loopml's server logs every prediction durably before answering (it cannot be
switched off); after it shuts down the log is read back and every answered
request must be in it. MLflow runs from the peers' virtualenv (``--vs mlflow``):
``mlflow models serve --env-manager local`` with one worker. Both servers get
byte-identical request bodies (``dataframe_split`` JSON), and both answers are
checked against the in-process predictions.

Examples::

    make bench                                   # everything, against MLflow
    .venv/bin/python bench/serving.py            # loopml only; MLflow's figures from the issue
    .venv/bin/python bench/serving.py --vs mlflow --duration 5 --json out.json --markdown
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import pickle
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORKERS = BENCH / "workers"
DEFAULT_PEER_PYTHON = REPO / ".venv-peers" / "bin" / "python"

FEATURES = 20
TREES = 100
TRAIN_ROWS = 10_000
BIG_ROWS = 10_000
ROW_BODIES = 100  # distinct single-row bodies the client cycles through
SEED = 0
ENDPOINT = "bench"

READY_TIMEOUT_SECONDS = 300
STOP_TIMEOUT_SECONDS = 120
SETUP_TIMEOUT_SECONDS = 600
PACE_SECONDS = 1e-3  # idle before each paced raw predict
PACED_REPEATS = 300
BUSY_LOAD = 0.5  # warn when the 1-minute load average exceeds this per usable core
TABLE_WIDTH = 170  # when stdout is not a terminal

# MLflow 3.17 on this machine, as recorded in the issue (one worker).
REFERENCE = {
    "raw_one_row": 4.4e-3,
    "raw_big": 84e-3,
    "c1_rps": 114.0,
    "c1_p50": 8.6e-3,
    "c16_rps": 73.0,
    "c16_p50": 214e-3,
    "c16_p99": 461e-3,
    "big": 222e-3,
}
TARGET_C16_RPS_RATIO = 10.0
TARGET_C16_P99 = 50e-3
TARGET_C1_P50_OVER_RAW = 1e-3
TARGET_BIG_OVER_RAW = 1.5


# --- the model and the request bodies ----------------------------------------------


@dataclass
class Model:
    """The fitted forest, its inputs and the in-process predictions to check answers with."""

    forest: Any
    columns: list[str]
    rows: Any  # DataFrame of BIG_ROWS held-out rows; the first ROW_BODIES are single-row bodies
    expected: list[int]


def train() -> Model:
    """Fit the forest on TRAIN_ROWS rows; keep BIG_ROWS held-out rows for the requests."""
    import pandas as pd
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    x, y = make_classification(
        n_samples=TRAIN_ROWS + BIG_ROWS,
        n_features=FEATURES,
        n_informative=10,
        n_redundant=5,
        random_state=SEED,
    )
    columns = [f"f{i:02d}" for i in range(FEATURES)]
    frame = pd.DataFrame(x, columns=columns)
    train_x, rows = frame.iloc[:TRAIN_ROWS], frame.iloc[TRAIN_ROWS:].reset_index(drop=True)
    forest = RandomForestClassifier(n_estimators=TREES, random_state=SEED)
    forest.fit(train_x, y[:TRAIN_ROWS])
    return Model(forest, columns, rows, [int(v) for v in forest.predict(rows)])


def split_body(columns: list[str], data: list[list[float]]) -> bytes:
    """A ``dataframe_split`` request body, the one shape both servers accept."""
    return json.dumps({"dataframe_split": {"columns": columns, "data": data}}).encode()


def write_inputs(model: Model, workdir: Path) -> dict[str, Any]:
    """Write the pickled forest, the example rows and every request body into ``workdir``."""
    import sklearn

    with (workdir / "forest.pkl").open("wb") as f:
        pickle.dump(model.forest, f)
    example = {
        "columns": model.columns,
        "data": model.rows.iloc[:5].to_numpy().tolist(),
        "sklearn": sklearn.__version__,
    }
    (workdir / "example.json").write_text(json.dumps(example))
    bodies = workdir / "bodies"
    bodies.mkdir()
    values = model.rows.to_numpy().tolist()
    row_files = []
    for i in range(ROW_BODIES):
        path = bodies / f"row-{i:03d}.json"
        path.write_bytes(split_body(model.columns, [values[i]]))
        row_files.append(str(path))
    big = bodies / "big.json"
    big.write_bytes(split_body(model.columns, values))
    return {"rows": row_files, "big": str(big), "big_bytes": big.stat().st_size}


# --- the floor: scikit-learn's predict in this process -------------------------------


def measure_raw(model: Model, repeats_one: int, repeats_big: int) -> dict[str, Any]:
    """Time ``forest.predict`` on one-row DataFrames and on the BIG_ROWS-row DataFrame.

    One-row calls are timed back to back (the floor the targets use) and again with
    PACE_SECONDS of idle before each: a server at concurrency 1 idles for every
    round trip, and on a shared machine the core's caches cool meanwhile.
    """
    singles = [model.rows.iloc[[i]] for i in range(ROW_BODIES)]
    for frame in singles[:20]:
        model.forest.predict(frame)
    gc.collect()
    one = []
    for i in range(repeats_one):
        frame = singles[i % ROW_BODIES]
        started = time.perf_counter()
        model.forest.predict(frame)
        one.append(time.perf_counter() - started)
    paced = []
    for i in range(PACED_REPEATS):
        time.sleep(PACE_SECONDS)
        started = time.perf_counter()
        model.forest.predict(singles[i % ROW_BODIES])
        paced.append(time.perf_counter() - started)
    model.forest.predict(model.rows)
    big = []
    for _ in range(repeats_big):
        gc.collect()
        started = time.perf_counter()
        model.forest.predict(model.rows)
        big.append(time.perf_counter() - started)
    one.sort()
    return {
        "one_row": {
            "count": len(one),
            "p50": statistics.median(one),
            "p99": one[max(0, int(len(one) * 0.99) - 1)],
        },
        "one_row_paced": {
            "count": len(paced),
            "pause": PACE_SECONDS,
            "p50": statistics.median(paced),
        },
        "big": {"count": len(big), "median": statistics.median(big), "all": big},
    }


# --- servers ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def clean_env(drop_prefix: str, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop_prefix)}
    return env | extra


@dataclass
class Server:
    """A server subprocess in its own session (so its whole process group can be stopped)."""

    name: str
    argv: list[str]
    env: dict[str, str]
    port: int
    ready_path: str
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    ready_seconds: float = 0.0
    pids: list[int] = field(default_factory=list)

    def start(self) -> None:
        self.started_at = time.perf_counter()
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.log_path.parent,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self) -> None:
        assert self.proc is not None
        url = f"http://127.0.0.1:{self.port}{self.ready_path}"
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(
                    f"\n{self.name} server exited with status {self.proc.returncode} before "
                    f"answering; its log ends with:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    if answer.status == 200:
                        self.ready_seconds = time.perf_counter() - self.started_at
                        self.pids = group_pids(self.proc.pid)
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        self.stop()
        raise SystemExit(
            f"\n{self.name} server did not answer {url} within {READY_TIMEOUT_SECONDS} s; "
            f"its log ends with:\n{self.log_tail()}"
        )

    def stop(self) -> int | None:
        """SIGTERM the process group (a graceful shutdown), SIGKILL it if it lingers."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass
        return self.proc.returncode

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"


def group_pids(pgid: int) -> list[int]:
    """The processes of a process group (the server and any children it started)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid:  # field 5 of /proc/PID/stat: the process group
            found.append(int(stat.parent.name))
    return sorted(found) or [pgid]


def run_json(argv: list[str], env: dict[str, str], cwd: Path, what: str) -> dict[str, Any]:
    """Run a helper that prints one JSON line last; fail with its output if it fails."""
    proc = subprocess.run(
        argv,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=SETUP_TIMEOUT_SECONDS,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(
            f"\n{what} failed (exit {proc.returncode}); its output ends with:\n"
            f"{proc.stdout[-2000:]}{proc.stderr[-6000:]}"
        )
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@dataclass(frozen=True)
class Settings:
    duration: float
    warmup: float
    repeats: int
    workers: int = 1
    pause: float = 1.0


def client_plan(
    server: Server,
    path: str,
    inputs: dict[str, Any],
    settings: Settings,
    answers: Path,
    metrics_path: str | None,
) -> dict[str, Any]:
    """The phases the client runs against one server, in order.

    With ``metrics_path``, the server's metrics are read around the concurrency-1
    phase, to split its latency into the model call and the rest.
    """
    c1_metrics = {} if metrics_path is None else {"metrics_path": metrics_path}
    return {
        "host": "127.0.0.1",
        "port": server.port,
        "path": path,
        "server_pids": server.pids,
        "grace_seconds": 120,
        "row_bodies": inputs["rows"],
        "bodies": {"row": inputs["rows"][0], "big": inputs["big"]},
        "phases": [
            {
                "name": "probe",
                "kind": "probe",
                "save": {"row": str(answers / "row.json"), "big": str(answers / "big.json")},
            },
            {"name": "warmup", "kind": "load", "concurrency": 16, "seconds": settings.warmup},
            {
                "name": "c1",
                "kind": "load",
                "concurrency": 1,
                "seconds": settings.duration,
                "pause_seconds": settings.pause,
                **c1_metrics,
            },
            {
                "name": "c16",
                "kind": "load",
                "concurrency": 16,
                "seconds": settings.duration,
                "pause_seconds": settings.pause,
            },
            {
                "name": "big",
                "kind": "sequential",
                "body": "big",
                "repeats": settings.repeats,
                "pause_seconds": settings.pause,
            },
        ],
    }


def drive(
    server: Server,
    path: str,
    inputs: dict[str, Any],
    settings: Settings,
    workdir: Path,
    model: Model,
    metrics_path: str | None = None,
) -> dict[str, Any]:
    """Run the client against a ready server; check the probed answers; return its phases."""
    answers = workdir / f"answers-{server.name}"
    answers.mkdir()
    plan_path = workdir / f"plan-{server.name}.json"
    plan = client_plan(server, path, inputs, settings, answers, metrics_path)
    plan_path.write_text(json.dumps(plan))
    client = run_json(
        [sys.executable, str(WORKERS / "http_load.py"), str(plan_path)],
        dict(os.environ),
        workdir,
        f"the load client against {server.name}",
    )
    phases = {p["name"]: p for p in client["phases"]}
    for probe in phases["probe"]["answers"]:
        if probe["status"] != 200:
            raise SystemExit(
                f"\n{server.name} answered the probe {probe['saved']} with HTTP "
                f"{probe['status']}: {Path(probe['saved']).read_text()[:2000]}"
            )
    check_predictions(server.name, answers / "row.json", model.expected[:1])
    check_predictions(server.name, answers / "big.json", model.expected)
    return {"loop": client["loop"], "phases": phases}


def check_predictions(name: str, answer: Path, expected: list[int]) -> None:
    """Fail unless the answer's ``predictions`` equal the in-process predictions."""
    got = json.loads(answer.read_text()).get("predictions")
    if not isinstance(got, list) or [int(v) for v in got] != expected:
        shown = got[:10] if isinstance(got, list) else got
        raise SystemExit(
            f"\n{name} answered {answer.name} with predictions that differ from the "
            f"in-process predict: got {shown}…, expected {expected[:10]}…"
        )


def answered(phases: dict[str, Any]) -> int:
    """Every 200 answer the client got, across all phases (the count the log must hold)."""
    total = sum(1 for p in phases["probe"]["answers"] if p["status"] == 200)
    return total + sum(int(p["ok"]) for p in phases.values() if p["kind"] != "probe")


def run_loopml(
    model: Model, inputs: dict[str, Any], settings: Settings, workdir: Path
) -> dict[str, Any]:
    """Register, deploy and serve the forest with loopml; drive it; check its log."""
    home = workdir / "loopml-home"
    env = clean_env("LOOPML_", {"LOOPML_HOME": str(home)})
    helper = [sys.executable, str(WORKERS / "loopml_serving.py")]
    setup = run_json([*helper, "setup", "--workdir", str(workdir)], env, workdir, "loopml setup")
    wal = workdir / "loopml-wal"
    port = free_port()
    loopml_cli = Path(sys.executable).parent / "loopml"
    server = Server(
        "loopml",
        [
            *(str(loopml_cli), "serve", ENDPOINT),
            *("--host", "127.0.0.1", "--port", str(port), "--log-folder", str(wal)),
            *("--workers", str(settings.workers)),
        ],
        env,
        port,
        "/v2/health/ready",
        workdir / "loopml-server.log",
    )
    server.start()
    try:
        server.wait_ready()
        client = drive(
            server,
            f"/v1/endpoints/{ENDPOINT}/predict",
            inputs,
            settings,
            workdir,
            model,
            metrics_path="/metrics",
        )
    finally:
        status = server.stop()
    expected = answered(client["phases"])
    logged = run_json(
        [*helper, "count", "--workdir", str(workdir), "--wal", str(wal)],
        env,
        workdir,
        "reading loopml's prediction log",
    )
    return {
        "setup": setup,
        "ready_seconds": server.ready_seconds,
        "exit_status": status,
        "pids": server.pids,
        "logging": {"answered": expected, **logged, "complete": logged["logged"] == expected},
        **client,
    }


def run_mlflow(
    model: Model, inputs: dict[str, Any], settings: Settings, workdir: Path, peer_python: Path
) -> dict[str, Any]:
    """Log the forest to MLflow and serve it with ``mlflow models serve``; drive it."""
    peer_bin = peer_python.parent
    base = clean_env("MLFLOW_", {})
    setup = run_json(
        [str(peer_python), str(WORKERS / "mlflow_serving.py"), "--workdir", str(workdir)],
        base,
        workdir,
        "MLflow setup",
    )
    # `mlflow models serve` runs `uvicorn` from PATH: the peers' venv must come first.
    env = base | setup["env"] | {"PATH": f"{peer_bin}{os.pathsep}{base.get('PATH', '')}"}
    port = free_port()
    server = Server(
        "mlflow",
        [
            *(str(peer_bin / "mlflow"), "models", "serve", "-m", setup["model_uri"]),
            *("--env-manager", "local", "--workers", str(settings.workers)),
            *("--host", "127.0.0.1", "--port", str(port)),
        ],
        env,
        port,
        "/ping",
        workdir / "mlflow-server.log",
    )
    server.start()
    try:
        server.wait_ready()
        client = drive(server, "/invocations", inputs, settings, workdir, model)
    finally:
        status = server.stop()
    return {
        "setup": setup,
        "ready_seconds": server.ready_seconds,
        "exit_status": status,
        "pids": server.pids,
        **client,
    }


# --- summarising ------------------------------------------------------------------------


@dataclass
class Row:
    label: str
    unit: str  # "s" or "req/s" or "count" or "text"
    raw: float | None
    loopml: Any
    peer: Any
    higher_is_better: bool = False
    vs_raw: str = "—"
    target: str = "—"
    met: bool | None = None

    @property
    def ratio(self) -> float | None:
        ours, theirs = self.loopml, self.peer
        if not isinstance(ours, int | float) or not isinstance(theirs, int | float):
            return None
        if ours <= 0 or theirs <= 0:
            return None
        return ours / theirs if self.higher_is_better else theirs / ours


def errors_of(result: dict[str, Any] | None) -> int | None:
    if result is None:
        return None
    phases = result["phases"]
    return sum(sum(phases[name]["errors"].values()) for name in ("c1", "c16", "big"))


def summarise(
    raw: dict[str, Any], ours: dict[str, Any] | None, peer: dict[str, Any] | None
) -> list[Row]:
    """The table's rows with their targets (MLflow's figures from the issue when not run)."""

    def pick(result: dict[str, Any] | None, phase: str, key: str) -> float | None:
        if result is None:
            return None
        found = result["phases"][phase]
        if key == "rps":
            return float(found["requests_per_second"])
        if key == "median":
            return statistics.median(found["latencies"]) if found["latencies"] else None
        value = found["latency"][key]
        return None if value is None else float(value)

    def theirs(phase: str, key: str, ref: str | None) -> float | None:
        if peer is not None:
            return pick(peer, phase, key)
        return REFERENCE.get(ref) if ref else None

    def ms_over(value: float | None, floor: float) -> str:
        return "—" if value is None else f"{(value - floor) * 1000:+.2f} ms"

    raw_one, raw_one_p99, raw_big = (
        raw["one_row"]["p50"],
        raw["one_row"]["p99"],
        raw["big"]["median"],
    )
    c1_p50, c1_p99 = pick(ours, "c1", "p50"), pick(ours, "c1", "p99")
    c16_rps, c16_p99 = pick(ours, "c16", "rps"), pick(ours, "c16", "p99")
    c16_rps_peer = theirs("c16", "rps", "c16_rps")
    big = pick(ours, "big", "median")
    rows = [
        Row("1 row, concurrency 1: requests/s", "req/s", None, pick(ours, "c1", "rps"),
            theirs("c1", "rps", "c1_rps"), higher_is_better=True),
        Row("1 row, concurrency 1: p50 latency", "s", raw_one, c1_p50,
            theirs("c1", "p50", "c1_p50"), vs_raw=ms_over(c1_p50, raw_one),
            target=f"≤ raw + {TARGET_C1_P50_OVER_RAW * 1000:g} ms",
            met=None if c1_p50 is None else c1_p50 <= raw_one + TARGET_C1_P50_OVER_RAW),
        Row("1 row, concurrency 1: p99 latency", "s", raw_one_p99, c1_p99,
            theirs("c1", "p99", None), vs_raw=ms_over(c1_p99, raw_one_p99)),
        Row("1 row, concurrency 16: requests/s", "req/s", None, c16_rps, c16_rps_peer,
            higher_is_better=True, target=f"≥ {TARGET_C16_RPS_RATIO:g}x MLflow",
            met=None if c16_rps is None or not c16_rps_peer
            else c16_rps >= TARGET_C16_RPS_RATIO * c16_rps_peer),
        Row("1 row, concurrency 16: p50 latency", "s", None, pick(ours, "c16", "p50"),
            theirs("c16", "p50", "c16_p50")),
        Row("1 row, concurrency 16: p99 latency", "s", None, c16_p99,
            theirs("c16", "p99", "c16_p99"), target=f"< {TARGET_C16_P99 * 1000:g} ms",
            met=None if c16_p99 is None else c16_p99 < TARGET_C16_P99),
        Row(f"{BIG_ROWS:,} rows in one request (median)", "s", raw_big, big,
            theirs("big", "median", "big"),
            vs_raw="—" if big is None else f"{big / raw_big:.2f}x",
            target=f"≤ {TARGET_BIG_OVER_RAW:g}x raw",
            met=None if big is None else big <= TARGET_BIG_OVER_RAW * raw_big),
    ]  # fmt: skip
    failed = errors_of(ours)
    rows.append(
        Row(
            "Failed requests (non-200, dropped, unanswered)",
            "count",
            None,
            failed,
            errors_of(peer),
            target="0",
            met=None if failed is None else failed == 0,
        )
    )
    if ours is not None:
        logging = ours["logging"]
        rows.append(
            Row(
                "Predictions in the log after shutdown",
                "text",
                None,
                f"{logging['logged']:,} of {logging['answered']:,}",
                "no prediction log" if peer is not None else None,
                target="every answer",
                met=bool(logging["complete"]),
            )
        )
    return rows


# --- printing ------------------------------------------------------------------------------


def fmt(value: Any, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "s":
        ms = value * 1000
        return f"{ms:.2f} ms" if ms < 10 else f"{ms:.3g} ms" if ms < 1000 else f"{ms:,.0f} ms"
    if unit == "req/s":
        return f"{value:,.1f}/s" if value < 100 else f"{value:,.0f}/s"
    if unit == "count":
        return f"{value:,}"
    return str(value)


def fmt_ratio(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.1f}x" if value < 100 else f"{value:,.0f}x"


def headers(peer_ran: bool) -> list[str]:
    other = "MLflow" if peer_ran else "MLflow 3.17 (reference)"
    return [
        "Workload",
        "raw predict",
        "loopml",
        other,
        "loopml vs MLflow",
        "loopml vs raw",
        "Target",
        "Met?",
    ]


def cells(row: Row, peer_ran: bool) -> list[str]:
    peer = fmt(row.peer, row.unit)
    if not peer_ran and row.peer is not None:
        peer += " (ref)"
    met = {None: "—", True: "yes", False: "NO"}[row.met]
    return [
        row.label,
        fmt(row.raw, row.unit),
        fmt(row.loopml, row.unit),
        peer,
        fmt_ratio(row.ratio),
        row.vs_raw,
        row.target,
        met,
    ]


PHASE_NAMES = {"c1": "concurrency 1", "c16": "concurrency 16", "big": f"{BIG_ROWS:,} rows"}


def cpu_line(name: str, result: dict[str, Any]) -> str:
    """Cores kept busy in each timed phase by the server, the client and everything else."""

    def cores(p: dict[str, Any], key: str) -> str:
        value = p.get(key)
        return "?" if value is None else f"{value / p['wall_seconds']:.2f}"

    parts = []
    for phase, title in PHASE_NAMES.items():
        p = result["phases"][phase]
        parts.append(
            f"{title}: server {cores(p, 'server_cpu_seconds')}, "
            f"client {cores(p, 'client_cpu_seconds')}, other processes "
            f"{cores(p, 'others_cpu_seconds')}"
        )
    return f"{name}, cores busy · " + " · ".join(parts)


def error_line(name: str, result: dict[str, Any]) -> str | None:
    """The kinds of failed requests per phase, when there were any."""
    found = [
        f"{PHASE_NAMES.get(phase, phase)}: "
        + ", ".join(f"{count} x {kind}" for kind, count in p["errors"].items())
        for phase, p in result["phases"].items()
        if p.get("errors")
    ]
    return f"{name} failed requests · " + " · ".join(found) if found else None


def metric_totals(text: str) -> dict[str, float]:
    """The sum over label sets of every sample in a Prometheus text page."""
    from prometheus_client.parser import text_string_to_metric_families

    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


def inside_line(phase: dict[str, Any]) -> str | None:
    """Where loopml's concurrency-1 latency goes, from its metrics before and after the phase."""
    if "metrics_after" not in phase:
        return None
    before, after = metric_totals(phase["metrics_before"]), metric_totals(phase["metrics_after"])

    def mean(series: str) -> float | None:
        count = after.get(f"{series}_count", 0.0) - before.get(f"{series}_count", 0.0)
        total = after.get(f"{series}_sum", 0.0) - before.get(f"{series}_sum", 0.0)
        return total / count if count > 0 else None

    request, call = mean("loopml_request_latency_seconds"), mean("loopml_model_call_seconds")
    client = phase["latency"]["mean"]
    if request is None or call is None or client is None:
        return None
    return (
        f"loopml at concurrency 1, means from its /metrics: model call (input check and "
        f"predict) {call * 1000:.2f} ms; the rest of the answer (queue, routing, prediction "
        f"log) {(request - call) * 1000:.2f} ms; outside the answer (HTTP, body parsing, "
        f"network, client) {(client - request) * 1000:.2f} ms; client mean "
        f"{client * 1000:.2f} ms"
    )


def facts_lines(facts: dict[str, Any], results: dict[str, Any]) -> list[str]:
    load = facts["load_average_1min"]
    raw = results["raw"]
    settings = facts["settings"]
    lines = [
        f"{facts['date']} · {facts['cpu']} · {facts['usable_cores']} usable cores · "
        f"{facts['platform']} · load average {load['start']:.2f} at start, "
        f"{load['end']:.2f} at end",
        f"model: RandomForestClassifier({TREES} trees) on {TRAIN_ROWS:,} x {FEATURES} floats "
        f"(make_classification, seed {SEED}); scikit-learn {facts['sklearn']} · "
        f"Python {facts['python']}",
        f"raw predict: median of {raw['one_row']['count']} one-row DataFrames and of "
        f"{raw['big']['count']} {BIG_ROWS:,}-row calls, in the benchmark's process "
        "before any server starts"
        + (
            ""
            if "raw_after" not in results
            else "; again after the servers stopped (drift check): "
            f"{results['raw_after']['one_row']['p50'] * 1000:.2f} ms and "
            f"{results['raw_after']['big']['median'] * 1000:.1f} ms"
        )
        + (
            ""
            if "one_row_paced" not in raw
            else f"; one row with {raw['one_row_paced']['pause'] * 1000:g} ms of idle before "
            f"each call (as a server at concurrency 1 idles for every round trip): p50 "
            f"{raw['one_row_paced']['p50'] * 1000:.2f} ms"
        ),
        f"load phases: {settings['duration']:g} s each after a {settings['warmup']:g} s warm-up "
        f"at concurrency 16; {BIG_ROWS:,}-row request ({facts['big_bytes'] / 1e6:.1f} MB of "
        f"JSON): median of {settings['repeats']}; client: {facts.get('client_loop', '?')}, "
        "one keep-alive connection per concurrent request, separate process",
    ]
    ours = results.get("loopml")
    if ours is not None:
        s = ours["setup"]
        lines.append(
            f"loopml {s['loopml']}: `loopml serve --workers {settings['workers']}`, model "
            f"{s['model']} ({s['flavor']}), prediction logging on; ready in "
            f"{ours['ready_seconds']:.1f} s"
        )
        lines += [line for line in [inside_line(ours["phases"]["c1"])] if line]
        lines.append(cpu_line("loopml", ours))
        lines += [line for line in [error_line("loopml", ours)] if line]
    peer = results.get("mlflow")
    if peer is not None:
        s = peer["setup"]
        lines.append(
            f"mlflow {s['mlflow']}: `mlflow models serve --env-manager local "
            f"--workers {settings['workers']}` "
            f"({s['serialization']} format), scikit-learn {s['sklearn']}; ready in "
            f"{peer['ready_seconds']:.1f} s"
        )
        lines.append(cpu_line("MLflow", peer))
        lines += [line for line in [error_line("MLflow", peer)] if line]
    return lines


def print_rich(rows: list[Row], facts: dict[str, Any], results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    out = Console()
    if not out.is_terminal:
        out = Console(width=TABLE_WIDTH)
    peer_ran = results.get("mlflow") is not None
    table = Table(title="loopml serving benchmark", title_justify="left")
    for index, header in enumerate(headers(peer_ran)):
        table.add_column(header, justify="left" if index == 0 else "right")
    for row in rows:
        table.add_row(*cells(row, peer_ran))
    out.print(table)
    for line in facts_lines(facts, results):
        out.print(line, highlight=False, markup=False)
    if not peer_ran:
        out.print(
            "(ref) = MLflow figure recorded in the issue, not measured now; "
            "run with --vs mlflow for a like-for-like comparison."
        )


def markdown(rows: list[Row], facts: dict[str, Any], results: dict[str, Any]) -> str:
    peer_ran = results.get("mlflow") is not None
    head = headers(peer_ran)
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "|".join([":---"] + ["---:"] * (len(head) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(cells(row, peer_ran)) + " |" for row in rows]
    lines.append("")
    lines += [f"- {line}" for line in facts_lines(facts, results)]
    return "\n".join(lines)


def usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


# --- command line ----------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--vs", choices=["mlflow"], help="also serve with this peer")
    parser.add_argument(
        "--peer-python",
        type=Path,
        default=DEFAULT_PEER_PYTHON,
        help="interpreter of the peers' virtualenv (default: .venv-peers/bin/python)",
    )
    parser.add_argument(
        "--skip-peer",
        action="store_true",
        help="ignore --vs (loopml only; MLflow's column shows the issue's figures)",
    )
    parser.add_argument(
        "--peer-only", action="store_true", help="serve only with the peer (checks its setup)"
    )
    parser.add_argument(
        "--duration", type=float, help="seconds of each load phase (default 10; 3 with --quick)"
    )
    parser.add_argument(
        "--warmup", type=float, help="seconds of warm-up load (default 3; 1 with --quick)"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        help=f"{BIG_ROWS:,}-row requests to take the median of (default 7; 3 with --quick)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="server processes, for both servers (default 1)"
    )
    parser.add_argument("--quick", action="store_true", help="short phases: a smoke test")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the temp folder")
    parser.add_argument(
        "--check", action="store_true", help="exit with status 1 when a target is missed"
    )
    args = parser.parse_args(argv)
    if args.skip_peer:
        args.vs = None
    if args.peer_only and not args.vs:
        parser.error("--peer-only needs --vs (and no --skip-peer)")
    args.duration = args.duration or (3.0 if args.quick else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 3.0)
    args.repeats = args.repeats or (3 if args.quick else 7)
    if args.duration <= 0 or args.warmup < 0 or args.repeats < 1 or args.workers < 1:
        parser.error("--duration must be > 0, --warmup >= 0, --repeats and --workers >= 1")
    if args.vs and not args.peer_python.exists():
        parser.error(
            f"{args.peer_python} does not exist; `make bench` creates .venv-peers from "
            "bench/peers-requirements.txt, or pass --peer-python (or --skip-peer)."
        )
    # Absolute but not resolved: resolving the venv's python symlink would leave the venv.
    args.peer_python = args.peer_python.absolute()
    return args


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings(args.duration, args.warmup, args.repeats, args.workers)
    load_at_start = os.getloadavg()[0]
    if load_at_start > BUSY_LOAD * usable_cores():
        say(
            f"warning: load average {load_at_start:.1f}; other processes will slow both "
            "servers and blur the figures"
        )
    workdir = Path(tempfile.mkdtemp(prefix="loopml-bench-serving-"))
    results: dict[str, Any] = {}
    try:
        started = time.perf_counter()
        model = train()
        say(f"trained the forest in {time.perf_counter() - started:.1f} s")
        inputs = write_inputs(model, workdir)
        results["raw"] = measure_raw(model, repeats_one=500, repeats_big=max(7, args.repeats))
        say(
            f"raw predict: 1 row {results['raw']['one_row']['p50'] * 1000:.2f} ms, "
            f"{BIG_ROWS:,} rows {results['raw']['big']['median'] * 1000:.1f} ms"
        )
        if not args.peer_only:
            started = time.perf_counter()
            results["loopml"] = run_loopml(model, inputs, settings, workdir)
            say(f"loopml done in {time.perf_counter() - started:.1f} s")
        if args.vs:
            started = time.perf_counter()
            results["mlflow"] = run_mlflow(model, inputs, settings, workdir, args.peer_python)
            say(f"MLflow done in {time.perf_counter() - started:.1f} s")
        # The floor again, once every server has stopped: a drift check on a shared machine.
        results["raw_after"] = measure_raw(model, repeats_one=500, repeats_big=max(7, args.repeats))
    finally:
        if args.keep_tmp:
            say(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    import sklearn

    facts = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "platform": platform.platform(),
        "load_average_1min": {"start": load_at_start, "end": os.getloadavg()[0]},
        "python": platform.python_version(),
        "sklearn": sklearn.__version__,
        "settings": {
            "duration": args.duration,
            "warmup": args.warmup,
            "repeats": args.repeats,
            "workers": args.workers,
        },
        "big_bytes": inputs["big_bytes"],
        "client_loop": next(
            (r["loop"] for k, r in results.items() if k != "raw" and "loop" in r), None
        ),
    }
    rows = summarise(results["raw"], results.get("loopml"), results.get("mlflow"))
    print_rich(rows, facts, results)
    if args.markdown:
        print()
        print(markdown(rows, facts, results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        table = [{**row.__dict__, "ratio": row.ratio} for row in rows]
        payload = {"machine": facts, "summary": table, "results": results}
        args.json.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    missed = [row.label for row in rows if row.met is False]
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
