"""The serving half of ``loopml demo``: deploy, serve, send traffic, post feedback, compare.

The champion and the other candidate are deployed as endpoint ``breast-cancer``
(the champion as primary, the other as a canary). ``loopml serve`` starts as a
child process on a free loopback port with a prediction-log folder of its own;
client threads send single-row requests from the held-out split over keep-alive
connections (the standard library's ``http.client``: httpx is only a development
dependency). Once the traffic is over, the true labels follow as delayed
feedback, in batches; SIGTERM stops the server, which writes its log as
segments on the way out; then the routes are compared on that traffic with
:func:`loopml.serving._compare.compare_routes`.

Whatever happens, the server process is stopped before :func:`serve_demo` returns
or raises; a failure is a :class:`~loopml.errors.ServingError` (one red line).
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

from rich.console import Console

from loopml._private_fs import make_private_dirs
from loopml.cli._deployments import comparison_table
from loopml.errors import ServingError

__all__ = ["DRIFTED", "DRIFT_REQUESTS", "ENDPOINT", "REQUESTS", "serve_demo"]

ENDPOINT = "breast-cancer"
REQUESTS = 3000
"""Single-row predict requests the demo sends."""
DRIFT_REQUESTS = 1500
"""Requests sent after the labelled traffic, with drifted inputs."""
DRIFTED = {"mean radius": 1.3, "worst area": 1.6, "mean texture": 1.25}
"""The columns the drifted requests scale, and by how much."""
CANARY_WEIGHT = 15
"""Percent of the traffic the canary gets; the champion gets the rest."""
_CLIENTS = 8
_FEEDBACK_BATCH = 500
_READY_SECONDS = 90.0  # the server loads and warms up both models before it opens its port
_STOP_SECONDS = 60.0
_HTTP_TIMEOUT = 30.0
_BUSY_RETRIES = 100  # 503 answers (a full queue) to sit out, per request
_BUSY_WAIT_CAP = 0.5


def serve_demo(
    console: Console, *, project: str, model: str, canary: str, test_ref: str
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Deploy ``model@champion`` with ``canary``, serve it, send traffic and compare the routes.

    Args:
        console: where to report.
        project: the demo project.
        model: the registered model; its ``@champion`` takes the primary route.
        canary: the version (``name/N``) that takes the canary route.
        test_ref: the held-out split whose rows (minus ``id`` and ``target``) are sent,
            and whose ``target`` is posted as feedback.

    Returns:
        The windows (ms, ``[since, until)``) of the normal traffic and of the drifted
        traffic sent after it (:data:`DRIFTED` columns scaled), for the monitoring demo.

    Raises:
        ServingError: the deployment, the server, a request or the comparison failed.
    """
    import loopml.data
    from loopml import settings
    from loopml.serving._compare import compare_routes
    from loopml.serving._deployments import get_client as deployments
    from loopml.store import now_ms
    from loopml.tracking import get_client as tracking

    deployment = deployments().set(
        ENDPOINT,
        [f"{model}@champion:{100 - CANARY_WEIGHT}", f"{canary}:{CANARY_WEIGHT}:canary"],
        project=project,
        settings={"log_probabilities": True},  # for the monitor's estimated performance
        reason="loopml demo: champion with a canary",
    )
    routes = ", ".join(str(r) for r in deployment.routes)
    console.print(
        f"Serving: endpoint [bold]{ENDPOINT}[/] revision {deployment.revision}: {routes}",
        highlight=False,
        soft_wrap=True,
    )
    frame = loopml.data.load(test_ref, project=project)
    rows = frame.drop(columns=["id", "target"]).to_dict(orient="records")
    targets = [int(t) for t in frame["target"]]
    folder = settings.home() / "demo-serving"
    make_private_dirs(folder)
    with _ServeProcess(folder, project) as server:
        started = time.perf_counter()
        server.wait_ready()
        console.print(
            f"  [green]✓[/] loopml serve ready on {server.url} in "
            f"{time.perf_counter() - started:.1f}s (prediction log: {folder / 'predictions'})",
            highlight=False,
            soft_wrap=True,
        )
        since = now_ms()
        started = time.perf_counter()
        bodies = [{"records": [rows[i % len(rows)]]} for i in range(REQUESTS)]
        answers = _send_all(server.port, bodies)
        took = time.perf_counter() - started
        by_route = Counter(str(a["route"]) for a in answers)
        console.print(
            f"  [green]✓[/] {len(answers)} requests answered in {took:.1f}s "
            f"({len(answers) / took:.0f}/s, {_CLIENTS} clients): "
            + ", ".join(f"{n} by {route}" for route, n in sorted(by_route.items())),
            highlight=False,
            soft_wrap=True,
        )
        labels = [(str(a["request_id"]), targets[i % len(targets)]) for i, a in enumerate(answers)]
        recorded = _post_feedback(server.port, labels)
        console.print(
            f"  [green]✓[/] {recorded} true labels posted afterwards as delayed feedback "
            f"(batches of {_FEEDBACK_BATCH})",
            highlight=False,
        )
        normal = (since, now_ms())
        drift_since = now_ms()
        drifted = [_drifted(rows[i % len(rows)]) for i in range(DRIFT_REQUESTS)]
        _send_all(server.port, [{"records": [row]} for row in drifted])
        console.print(
            f"  [green]✓[/] then {DRIFT_REQUESTS} requests whose inputs drifted "
            f"({', '.join(f'{c} x{f}' for c, f in DRIFTED.items())}), with no labels yet",
            highlight=False,
            soft_wrap=True,
        )
        drift_window = (drift_since, now_ms() + 1)
        server.stop()
    client = tracking()
    comparison = compare_routes(
        client.store,
        client.artifacts,
        ENDPOINT,
        project=project,
        since_ms=since,
        until_ms=normal[1],
    )
    logged = sum(r.predictions for r in comparison.routes)
    console.print(
        f"  [green]✓[/] server stopped; {logged} of {len(answers)} answered requests are in "
        "the prediction log",
        highlight=False,
    )
    console.print(comparison_table(comparison))
    console.print(comparison.summary, highlight=False, soft_wrap=True)
    return normal, drift_window


def _drifted(row: dict[Any, Any]) -> dict[Any, Any]:
    """``row`` with the :data:`DRIFTED` columns scaled: what a changed upstream sends."""
    return {k: v * DRIFTED[k] if k in DRIFTED else v for k, v in row.items()}


# -- the server process -----------------------------------------------------------------------


class _ServeProcess:
    """``loopml serve`` as a child process; leaving the ``with`` block always stops it."""

    def __init__(self, folder: Path, project: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._output = folder / "serve.log"
        command = [
            sys.executable,
            "-m",
            "loopml.cli",
            "serve",
            ENDPOINT,
            "--project",
            project,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-folder",
            str(folder / "predictions"),
            "--poll-interval",
            "0",
        ]
        # A file, not a pipe: uvicorn's access log would fill a pipe and stall the server.
        # A session of its own: Ctrl-C reaches the demo, which then stops the server.
        with self._output.open("wb") as sink:
            self._process = subprocess.Popen(
                command, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
            )

    def __enter__(self) -> _ServeProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def wait_ready(self) -> None:
        """Return once ``GET /v2/health/ready`` answers 200.

        Raises:
            ServingError: the server exited, or was not ready in time.
        """
        deadline = time.monotonic() + _READY_SECONDS
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                raise ServingError(
                    f"The demo's loopml serve exited with code {code}: {self._last_line()}"
                )
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            try:
                connection.request("GET", "/v2/health/ready")
                if connection.getresponse().status == 200:
                    return
            except OSError:  # not listening yet
                pass
            finally:
                connection.close()
            time.sleep(0.05)
        raise ServingError(
            f"The demo's loopml serve was not ready after {_READY_SECONDS:.0f}s; "
            f"see {self._output}."
        )

    def stop(self) -> None:
        """SIGTERM the server and wait until it has written its log and exited.

        Raises:
            ServingError: it did not exit cleanly in time.
        """
        self._process.send_signal(signal.SIGTERM)
        try:
            code = self._process.wait(_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            raise ServingError(
                f"The demo's loopml serve did not stop within {_STOP_SECONDS:.0f}s of SIGTERM; "
                f"see {self._output}."
            ) from None
        if code != 0:
            raise ServingError(
                f"The demo's loopml serve exited with code {code}: {self._last_line()}"
            )

    def _last_line(self) -> str:
        lines = self._output.read_text(errors="replace").strip().splitlines()
        return f"{lines[-1]} (see {self._output})" if lines else f"no output (see {self._output})"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the clients --------------------------------------------------------------------------------


class _Client:
    """One keep-alive HTTP/1.1 connection to the demo server (one per thread)."""

    def __init__(self, port: int) -> None:
        self._connection = http.client.HTTPConnection("127.0.0.1", port, timeout=_HTTP_TIMEOUT)

    def post(self, path: str, body: object) -> dict[str, Any]:
        """POST ``body`` as JSON and return the JSON answer, sitting out 503s.

        Raises:
            ServingError: the server answered an error, or could not be reached.
        """
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        for _attempt in range(_BUSY_RETRIES):
            try:
                self._connection.request("POST", path, data, headers)
                response = self._connection.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException) as exc:
                raise ServingError(f"POST {path} to the demo server failed: {exc!r}") from None
            if response.status == 503:  # the route's queue is full: come back later
                wait = float(response.getheader("Retry-After") or 0)
                time.sleep(min(max(wait, 0.01), _BUSY_WAIT_CAP))
                continue
            try:
                answer = json.loads(payload)
            except ValueError:
                answer = None
            if response.status != 200 or not isinstance(answer, dict):
                error = answer.get("error") if isinstance(answer, dict) else None
                message = (
                    error.get("message")
                    if isinstance(error, dict)
                    else payload[:200].decode(errors="replace")
                )
                raise ServingError(
                    f"The demo server answered {response.status} to POST {path}: {message}"
                )
            return answer
        raise ServingError(f"The demo server stayed too busy to answer POST {path}.")

    def close(self) -> None:
        """Close the connection."""
        self._connection.close()


def _send_all(port: int, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """POST every body to the endpoint from a few threads; the answers, in order."""
    local = threading.local()
    clients: list[_Client] = []
    lock = threading.Lock()
    path = f"/v1/endpoints/{ENDPOINT}/predict"

    def send(body: dict[str, Any]) -> dict[str, Any]:
        client: _Client | None = getattr(local, "client", None)
        if client is None:
            client = local.client = _Client(port)
            with lock:
                clients.append(client)
        return client.post(path, body)

    try:
        with ThreadPoolExecutor(_CLIENTS, thread_name_prefix="loopml-demo-client") as pool:
            return list(pool.map(send, bodies))
    finally:
        for client in clients:
            client.close()


def _post_feedback(port: int, labels: list[tuple[str, int]]) -> int:
    """Post ``(request_id, label)`` pairs in batches; the number of labels recorded."""
    client = _Client(port)
    path = f"/v1/endpoints/{ENDPOINT}/feedback"
    try:
        recorded = 0
        for start in range(0, len(labels), _FEEDBACK_BATCH):
            items = [
                {"request_id": request_id, "label": label}
                for request_id, label in labels[start : start + _FEEDBACK_BATCH]
            ]
            recorded += int(client.post(path, {"items": items})["recorded"])
        return recorded
    finally:
        client.close()
