"""The management endpoints: health, readiness, the plugin list, calls and metrics."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .._units import format_size
from ._errors import error_response, http_error
from ._metrics import CONTENT_TYPE

if TYPE_CHECKING:
    from ._app import ServeApp

__all__ = ["MAX_CALL_BODY", "management_routes"]

MAX_CALL_BODY = 16 << 20
"""The largest JSON input ``POST /plugins/{name}/call/{command}`` accepts."""


def management_routes(app: ServeApp) -> list[BaseRoute]:
    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        waiting = [i.name for i in app.host.plugins() if i.state == "compiling"]
        if not app.reloader.first_load_done.is_set():
            return JSONResponse({"ready": False, "waiting": ["first load"]}, 503)
        if waiting:
            return JSONResponse({"ready": False, "waiting": waiting}, 503)
        return JSONResponse({"ready": True})

    async def plugins(request: Request) -> Response:
        listed = []
        for info in app.host.plugins():
            entry = info.as_json()
            for details in app.plugin_details:
                entry.update(details(info.name))
            listed.append(entry)
        config = {
            "path": str(app.config_path) if app.config_path else None,
            "error": app.reloader.config_error or None,
        }
        return JSONResponse({"plugins": listed, "config": config})

    async def call(request: Request) -> Response:
        name = request.path_params["name"]
        command = request.path_params["command"]
        body = await _read_body(request)
        if isinstance(body, Response):
            return body
        try:
            input = json.loads(body) if body.strip() else None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return http_error(400, "bad-request", f"the request body is not JSON: {exc}")
        try:
            result = await app.caller.call(name, command, input)
        except Exception as exc:
            return error_response(exc)
        return JSONResponse(result)

    async def metrics(request: Request) -> Response:
        return Response(app.metrics.exposition(), media_type=CONTENT_TYPE)

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/plugins", plugins, methods=["GET"]),
        Route("/plugins/{name}/call/{command}", call, methods=["POST"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]


async def _read_body(request: Request) -> bytes | Response:
    """The body, or a 413 once it is larger than `MAX_CALL_BODY` (never read whole first)."""
    too_large = http_error(
        413, "bad-request", f"the request body is larger than {format_size(MAX_CALL_BODY)}"
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_CALL_BODY:
        return too_large
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > MAX_CALL_BODY:
            return too_large
    return bytes(chunks)
