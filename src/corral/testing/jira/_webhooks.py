"""Jira's admin webhooks: `jira:issue_created|updated|deleted` POSTed to configured URLs.

Every create, update and delete, made by any client through the API, becomes one delivery per
target, sent from a background thread so the API's latency does not depend on the receivers.
Like Jira Cloud:

- a target with a secret gets ``X-Hub-Signature: sha256=<hex HMAC-SHA256 of the body>``;
- a delivery answered 408, 409, 425, 429 or 5xx, or whose connection fails, is retried with
  backoff, carrying ``X-Atlassian-Webhook-Retry: <retry count>``;
- ``X-Atlassian-Webhook-Identifier`` is the same for a delivery and all its retries;
- the payload's ``issue`` is the REST v2 rendering (rich text as wiki markup).

What Jira does now and then, delayed deliveries and duplicates (a delivered webhook sent
again as a retry), comes from the emulator's fault plan (``webhook-delay``,
``webhook-duplicate``), so receivers' de-duplication can be tested.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx

from ._model import IssueEvent, User

if TYPE_CHECKING:
    from ._emulator import JiraEmulator

__all__ = ["Delivery", "DeliveryOptions", "WebhookTarget", "Webhooks", "signature"]

_RETRIED_STATUSES = frozenset({408, 409, 425, 429})


@dataclass(frozen=True)
class WebhookTarget:
    """Where to POST events; with a `secret`, deliveries are HMAC-signed."""

    url: str
    secret: str | None = None

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"webhook URL {self.url!r} must start with http:// or https://")


@dataclass(frozen=True)
class DeliveryOptions:
    """How failed deliveries are retried. `backoff` is real time, not the emulator's clock."""

    retries: int = 5  # at most this many retries of a failed delivery
    backoff: timedelta = timedelta(seconds=1)  # before the first retry; doubles after each
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"retries must be 0 or more, not {self.retries}")


@dataclass(frozen=True)
class Delivery:
    """One POST the emulator made (or tried to make)."""

    url: str
    event: str
    issue_key: str
    identifier: str
    retry: int  # 0 for the first attempt
    status: int | None  # None when the connection failed
    error: str | None = None


def signature(secret: str, body: bytes) -> str:
    """The `X-Hub-Signature` value Jira sends for `body` signed with `secret`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class _Payload:
    """One event's body, rendered once by the delivery thread for all its deliveries."""

    event: IssueEvent
    body: bytes | None = None


@dataclass(order=True)
class _Job:
    due: float
    order: int
    target: WebhookTarget = field(compare=False)
    payload: _Payload = field(compare=False)
    identifier: str = field(compare=False)
    retry: int = field(compare=False, default=0)


class Webhooks:
    """The emulator's webhook targets and the thread that delivers to them."""

    def __init__(
        self,
        emulator: JiraEmulator,
        targets: tuple[WebhookTarget, ...] = (),
        options: DeliveryOptions | None = None,
    ) -> None:
        self._emulator = emulator
        self._targets: tuple[WebhookTarget, ...] = tuple(targets)
        self.options = options or DeliveryOptions()
        self._jobs: list[_Job] = []
        self._order = itertools.count()
        self._identifiers = itertools.count(1)  # unique for the emulator's life, across resets
        self._in_flight = 0
        self._deliveries: list[Delivery] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._unsubscribe = emulator.on_change(self._on_change)

    # -- configuration --------------------------------------------------------------------

    @property
    def targets(self) -> tuple[WebhookTarget, ...]:
        return self._targets

    def add(self, url: str, secret: str | None = None) -> WebhookTarget:
        """Deliver every later event to `url` too (replacing an earlier target of that URL)."""
        target = WebhookTarget(url, secret)
        with self._cond:
            self._targets = (*(t for t in self._targets if t.url != url), target)
        return target

    def remove(self, url: str) -> None:
        with self._cond:
            self._targets = tuple(t for t in self._targets if t.url != url)

    def configure(self, options: DeliveryOptions) -> None:
        with self._cond:
            self.options = options

    def deliveries(self) -> list[Delivery]:
        """Every delivery attempt so far, in the order they were made."""
        with self._cond:
            return list(self._deliveries)

    # -- lifecycle --------------------------------------------------------------------------

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until nothing is queued or being sent; False if `timeout` passed first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._jobs or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def close(self) -> None:
        """Stop delivering (queued deliveries are dropped) and wait for the thread."""
        self._unsubscribe()
        with self._cond:
            self._closed = True
            self._jobs.clear()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=self.options.timeout + 1)

    # -- producing (inside the store's write lock: only queue) ------------------------------

    def _on_change(self, event: IssueEvent) -> None:
        with self._cond:
            if self._closed or not self._targets:
                return
            due = time.monotonic() + self._emulator.faults.plan.webhook_delay.total_seconds()
            payload = _Payload(event)
            for target in self._targets:
                identifier = str(next(self._identifiers))
                heapq.heappush(
                    self._jobs, _Job(due, next(self._order), target, payload, identifier)
                )
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="jira-emulator-webhooks", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    # -- delivering (the background thread) -------------------------------------------------

    def _run(self) -> None:
        with httpx.Client(timeout=self.options.timeout) as client:
            while (job := self._next_job()) is not None:
                try:
                    self._deliver(client, job)
                finally:
                    with self._cond:
                        self._in_flight -= 1
                        self._cond.notify_all()

    def _next_job(self) -> _Job | None:
        with self._cond:
            while not self._closed:
                if self._jobs:
                    wait = self._jobs[0].due - time.monotonic()
                    if wait <= 0:
                        self._in_flight += 1
                        return heapq.heappop(self._jobs)
                    self._cond.wait(wait)
                else:
                    self._cond.wait()
            return None

    def _deliver(self, client: httpx.Client, job: _Job) -> None:
        event = job.payload.event
        if job.payload.body is None:  # only this thread touches bodies
            document = self._payload_json(event)
            job.payload.body = json.dumps(document, separators=(",", ":")).encode()
        body = job.payload.body
        headers = {
            "Content-Type": "application/json",
            "X-Atlassian-Webhook-Identifier": job.identifier,
        }
        if job.retry:
            headers["X-Atlassian-Webhook-Retry"] = str(job.retry)
        if job.target.secret:
            headers["X-Hub-Signature"] = signature(job.target.secret, body)
        status: int | None = None
        error: str | None = None
        try:
            status = client.post(job.target.url, content=body, headers=headers).status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        failed = status is None or status in _RETRIED_STATUSES or status >= 500
        with self._cond:
            self._deliveries.append(
                Delivery(
                    job.target.url,
                    _webhook_event(event),
                    event.issue.key,
                    job.identifier,
                    job.retry,
                    status,
                    error,
                )
            )
            options = self.options
            again = (failed and job.retry < options.retries) or (
                not failed
                and job.retry == 0
                and self._emulator.faults.draw(self._emulator.faults.plan.webhook_duplicate)
            )
            if again and not self._closed:
                wait = options.backoff.total_seconds() * 2**job.retry if failed else 0.0
                heapq.heappush(
                    self._jobs,
                    _Job(
                        time.monotonic() + wait,
                        next(self._order),
                        job.target,
                        job.payload,
                        job.identifier,
                        job.retry + 1,
                    ),
                )

    def _payload_json(self, event: IssueEvent) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "timestamp": int(event.timestamp.timestamp() * 1000),
            "webhookEvent": _webhook_event(event),
            "issue_event_type_name": _issue_event_type(event),
            "user": self._user_json(event.user),
            "issue": self._emulator.render_issue(event.issue, api=2),
        }
        if event.history is not None:
            payload["changelog"] = {
                "id": str(event.history.id),
                "items": [item.to_json() for item in event.history.items],
            }
        return payload

    def _user_json(self, user: User) -> dict[str, Any]:
        return {
            "self": f"{self._emulator.base_url}/rest/api/2/user?accountId={user.account_id}",
            "accountId": user.account_id,
            "displayName": user.display_name,
            "active": True,
            "timeZone": user.time_zone,
            "accountType": "atlassian",
        }


def _webhook_event(event: IssueEvent) -> str:
    return f"jira:issue_{event.kind}"


def _issue_event_type(event: IssueEvent) -> str:
    # Jira names the kind of update: a workflow transition is "issue_generic", a change of
    # assignee alone "issue_assigned", anything else "issue_updated".
    if event.kind != "updated" or event.history is None:
        return f"issue_{event.kind}"
    changed = {item.field_id for item in event.history.items}
    if "status" in changed:
        return "issue_generic"
    if changed == {"assignee"}:
        return "issue_assigned"
    return "issue_updated"
