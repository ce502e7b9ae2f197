"""The Open Inference Protocol v2 routes: health, readiness, metadata and ``infer``.

``/v2``, ``/v2/health/live``, ``/v2/health/ready``, ``/v2/models/{name}``,
``/v2/models/{name}/ready`` and ``/v2/models/{name}/infer``, where ``name`` is
the endpoint. Readiness answers 503 (with ``Retry-After``) while the prediction
log cannot be written, since predictions are refused then, and 200 again once the
log has recovered by itself (:mod:`loopml.serving._wal`).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response

from loopml._version import __version__
from loopml.serving._core import ServerCore
from loopml.serving._http import LOG_DOWN, RETRY_SOON, json_response
from loopml.serving._oip import model_metadata, oip_output

__all__ = ["add_oip_routes"]


def add_oip_routes(app: FastAPI, server: ServerCore) -> None:
    """Declare the Open Inference Protocol v2 routes on ``app``."""

    @app.get("/v2")
    async def server_metadata() -> Response:
        return json_response({"name": "loopml", "version": __version__, "extensions": []})

    @app.get("/v2/health/live")
    async def live() -> Response:
        return json_response({"live": True})

    @app.get("/v2/health/ready")
    async def ready() -> Response:
        if not server.log.ready:
            return json_response({"ready": False, "reason": LOG_DOWN}, 503, RETRY_SOON)
        return json_response({"ready": True})

    @app.get("/v2/models/{name}")
    async def metadata(name: str) -> Response:
        return json_response(model_metadata(name, server.endpoint(name)))

    @app.get("/v2/models/{name}/ready")
    async def model_ready(name: str) -> Response:
        server.endpoint(name)
        if not server.log.ready:
            body = {"name": name, "ready": False, "reason": LOG_DOWN}
            return json_response(body, 503, RETRY_SOON)
        return json_response({"name": name, "ready": True})

    @app.post("/v2/models/{name}/infer")
    async def infer(name: str, request: Request) -> Response:
        live = server.endpoint(name)
        raw = await server.read_body(request)
        body, payload = await server.off_loop(len(raw), server.parse_infer, live, raw)
        answer = await server.answer(live, payload)
        given_id = body.get("id") if isinstance(body, dict) else None
        return json_response(
            {
                "model_name": name,
                "model_version": answer.outcome.model_version,
                "id": given_id if isinstance(given_id, str) else answer.request_id,
                "outputs": [oip_output(answer.outcome.predictions)],
            },
            headers={"X-Request-Id": answer.request_id},
        )
