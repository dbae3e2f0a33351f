"""Webhook intake: ``POST /webhooks/{plugin}`` authenticates, checks and queues an event.

The checks run cheapest first, and nothing is queued unless all pass:

- 404 when the plugin takes no webhooks (``plugins.<name>.webhooks`` unset, or the plugin
  disabled). Unknown and unconfigured plugins answer alike, so a sender cannot probe which
  plugins exist.
- 401 when the URL's ``?token=`` (if a token is configured) or the body's HMAC-SHA256 in
  ``X-Hub-Signature-256`` or ``X-Hub-Signature`` (``sha256=<hex>``, if a secret is configured)
  is missing or wrong. Both compare in constant time.
- 413 past `max_body` (a declared Content-Length is refused before anything is read).
- 400 unless the body is UTF-8 JSON.

Refusals carry the server's error body (``{"error": {"kind", "message"}}``). Then the event is
stored (committed) and the answer is 202, ``{"status": "queued"}``, or
``{"status": "duplicate"}`` when its delivery id was seen before: the first of
``X-GitHub-Delivery``, ``X-Atlassian-Webhook-Identifier``, ``X-Request-Id``, else the body's
sha256. The event's type is ``X-GitHub-Event``, else Jira's ``webhookEvent`` field, else
``webhook``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .._errors import ConfigError
from .._units import parse_size
from ..capabilities.http._secrets import Secret, install_redaction, resolve_secret
from ..config import HostConfig, WebhookOptions
from ._errors import http_error
from ._queue import EventQueue

__all__ = ["WebhookIntake"]

_log = logging.getLogger("corral.serve.webhooks")
_SIGNATURE_HEADERS = ("x-hub-signature-256", "x-hub-signature")
_DELIVERY_ID_HEADERS = ("x-github-delivery", "x-atlassian-webhook-identifier", "x-request-id")
_MAX_DELIVERY_ID = 200
_KINDS = {400: "bad-request", 401: "unauthorized", 404: "not-found", 413: "too-large"}


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = _KINDS[status]


@dataclass(frozen=True)
class _Receiver:
    """One plugin's webhook settings, secrets resolved."""

    plugin: str
    secret: Secret | None
    token: Secret | None
    max_body: int

    @classmethod
    def configure(cls, plugin: str, options: WebhookOptions) -> _Receiver:
        where = f"plugins.{plugin}.webhooks"
        try:
            secret = None if options.secret is None else resolve_secret(options.secret)
            token = None if options.token is None else resolve_secret(options.token)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        return cls(plugin, secret, token, parse_size(options.max_body))

    def check_token(self, given: str | None) -> None:
        if self.token is None:
            return
        if given is None:
            raise _Refused(401, "missing ?token= in the webhook URL")
        if not hmac.compare_digest(given.encode(), self.token.reveal().encode()):
            raise _Refused(401, "wrong webhook token")

    def check_signature(self, headers: Mapping[str, str], body: bytes) -> None:
        if self.secret is None:
            return
        given = next((headers[h] for h in _SIGNATURE_HEADERS if h in headers), None)
        if given is None:
            raise _Refused(401, "missing X-Hub-Signature-256 (sha256=<hex HMAC of the body>)")
        expected = "sha256=" + hmac.new(self.secret.reveal().encode(), body, "sha256").hexdigest()
        if not hmac.compare_digest(given.strip().lower().encode(), expected.encode()):
            raise _Refused(401, "signature does not match the body")


class WebhookIntake:
    """Receives webhooks for the plugins whose settings have ``webhooks``, into `queue`.

    `on_queued(plugin)` is called after an event is committed (to wake the delivery worker);
    `count(plugin, outcome)` after each webhook for a plugin that takes them, the outcome being
    ``queued``, ``duplicate`` or the refusal's kind (webhooks to other names are not counted:
    any name a sender makes up would become a metrics label).
    """

    def __init__(
        self,
        queue: EventQueue,
        on_queued: Callable[[str], None],
        count: Callable[[str, str], None],
    ) -> None:
        self._queue = queue
        self._on_queued = on_queued
        self._count = count
        self._receivers: dict[str, _Receiver] = {}

    def configure(self, config: HostConfig) -> None:
        """Take the webhook settings of `config`; on `ConfigError` the old ones stay."""
        receivers = {
            name: _Receiver.configure(name, settings.webhooks)
            for name, settings in config.plugins.items()
            if settings.webhooks is not None and settings.enabled
        }
        if any(r.token is not None for r in receivers.values()):
            install_redaction("uvicorn")  # access logs print the URL, token included
        self._receivers = receivers

    def routes(self) -> list[Route]:
        return [Route("/webhooks/{plugin}", self.receive, methods=["POST"])]

    async def receive(self, request: Request) -> JSONResponse:
        plugin = request.path_params["plugin"]
        receiver = self._receivers.get(plugin)
        try:
            if receiver is None:
                raise _Refused(404, f"plugin {plugin!r} takes no webhooks")
            receiver.check_token(request.query_params.get("token"))
            body = await _read_body(request, receiver.max_body)
            receiver.check_signature(request.headers, body)
            payload, value = _decode_json(body)
        except _Refused as refused:
            _log.info("webhook for %s refused (%d): %s", plugin, refused.status, refused)
            if receiver is not None:
                self._count(plugin, refused.kind)
            return http_error(refused.status, refused.kind, str(refused))
        seq = await run_in_threadpool(
            self._queue.enqueue,
            plugin,
            _delivery_id(request.headers, body),
            "webhook",
            _event_type(request.headers, value),
            payload,
        )
        if seq is None:
            self._count(plugin, "duplicate")
            return JSONResponse({"status": "duplicate"}, status_code=202)
        self._count(plugin, "queued")
        self._on_queued(plugin)
        return JSONResponse({"status": "queued", "seq": seq}, status_code=202)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _Refused(413, f"body of {declared} bytes is over the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _Refused(413, f"body is over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def _not_json(constant: str) -> Any:
    # Python reads NaN and Infinity; JSON has no such values, and plugins' parsers would fail.
    raise _Refused(400, f"body is not JSON: {constant} is not a JSON value")


def _decode_json(body: bytes) -> tuple[str, Any]:
    try:
        text = body.decode("utf-8")
        value = json.loads(text, parse_constant=_not_json)
    except UnicodeDecodeError:
        raise _Refused(400, "body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise _Refused(400, f"body is not JSON: {exc.msg} at position {exc.pos}") from None
    return text, value


def _delivery_id(headers: Mapping[str, str], body: bytes) -> str:
    for name in _DELIVERY_ID_HEADERS:
        value = headers.get(name, "").strip()
        if value:
            return value[:_MAX_DELIVERY_ID]
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _event_type(headers: Mapping[str, str], payload: Any) -> str:
    given = headers.get("x-github-event")
    if given:
        return given
    if isinstance(payload, dict) and isinstance(payload.get("webhookEvent"), str):
        return str(payload["webhookEvent"])
    return "webhook"
