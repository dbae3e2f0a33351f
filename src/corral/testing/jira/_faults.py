"""Faults the live Jira Cloud shows, on demand: rate limits, outages, latency, lost answers, lag.

A fault plan is written as a comma-separated list of ``name:value`` items, e.g.
``429:0.1,latency:50ms,drop-after-write:0.05,search-lag:2s``:

==================  =====================  ===============================================
item                value                  effect
==================  =====================  ===============================================
``429``             probability or N/T     burst rate limit per user (``jira-burst-based``)
``429-write``       probability or N/T     writes per issue (``jira-per-issue-on-write``)
``503``             probability            503 Service Unavailable, with ``Retry-After``
``latency``         duration               added before every request is handled
``drop-after-write``  probability          a write is applied, then the connection closes
                                           without an answer
``search-lag``      duration               writes reach ``/search/jql`` this much later
``webhook-duplicate``  probability        a delivered webhook is sent once more, as a retry
``webhook-delay``   duration               webhooks go out this much later (real time)
``retry-after``     duration (whole s)     ``Retry-After`` of probabilistic 429s and 503s
``seed``            integer                makes the random draws repeatable
==================  =====================  ===============================================

A probability is a number in [0, 1]. ``N/T`` (e.g. ``100/10s``) is a budget of N requests per
window of T on the emulator's clock: request N+1 of a window is refused, and its `Retry-After`
says when the window ends. Durations are ``250ms``, ``2s``, ``5m`` or ``1h``.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from starlette.responses import JSONResponse, Response

from ..._errors import ConfigError
from ._hooks import DropConnection
from ._model import ApiCall

if TYPE_CHECKING:
    from ._emulator import JiraEmulator

__all__ = ["Budget", "FaultPlan", "FaultSpecError", "Faults", "format_duration", "parse_duration"]

#: Jira does not publish its limits; probabilistic 429s report this as `X-RateLimit-Limit`.
NOMINAL_LIMIT = 100

RateLimitReason = Literal["jira-burst-based", "jira-per-issue-on-write"]

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class FaultSpecError(ConfigError, ValueError):
    """A fault plan that cannot be read; the message names the item and what was expected."""


@dataclass(frozen=True)
class Budget:
    """At most `requests` requests per `window` (fixed windows on the emulator's clock)."""

    requests: int
    window: timedelta

    def __str__(self) -> str:
        return f"{self.requests}/{format_duration(self.window)}"


Rate = float | Budget  # a probability, or a budget


@dataclass(frozen=True)
class FaultPlan:
    """Which faults to inject; the default plan injects none."""

    rate_limit: Rate = 0.0
    write_limit: Rate = 0.0
    unavailable: float = 0.0
    latency: timedelta = timedelta()
    drop_after_write: float = 0.0
    search_lag: timedelta = timedelta()
    webhook_duplicate: float = 0.0
    webhook_delay: timedelta = timedelta()
    retry_after: timedelta = timedelta(seconds=1)
    seed: int | None = None

    @classmethod
    def parse(cls, spec: str) -> FaultPlan:
        """The plan a spec like ``429:0.1,latency:50ms`` describes ("" or "none": no faults)."""
        text = spec.strip()
        if text in ("", "none"):
            return cls()
        changes: dict[str, Any] = {}
        for item in text.split(","):
            name, sep, value = item.strip().partition(":")
            if not sep or not value:
                raise FaultSpecError(f"fault {item.strip()!r} is not NAME:VALUE, e.g. 429:0.1")
            attribute, reader = _ITEMS.get(name, (None, None))
            if attribute is None or reader is None:
                known = ", ".join(_ITEMS)
                raise FaultSpecError(f"unknown fault {name!r}; known faults: {known}")
            if attribute in changes:
                raise FaultSpecError(f"fault {name!r} is given twice")
            try:
                changes[attribute] = reader(value)
            except ValueError as exc:
                raise FaultSpecError(f"fault {name!r}: {exc}") from None
        return cls(**changes)

    def __str__(self) -> str:
        """The spec of this plan (only items that differ from the default), parseable again."""
        default = FaultPlan()
        items = []
        for name, (attribute, _reader) in _ITEMS.items():
            value = getattr(self, attribute)
            if value != getattr(default, attribute):
                shown = format_duration(value) if isinstance(value, timedelta) else str(value)
                items.append(f"{name}:{shown}")
        return ",".join(items) or "none"


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a probability between 0 and 1") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{text!r} is not a probability between 0 and 1")
    return value


def parse_duration(text: str) -> timedelta:
    """``250ms``, ``2s``, ``5m``, ``1h`` or ``0`` as a timedelta."""
    match = _DURATION.match(text.strip())
    if match is None:
        if text.strip() == "0":
            return timedelta()
        raise ValueError(f"{text!r} is not a duration like 250ms, 2s, 5m or 1h")
    return timedelta(seconds=float(match[1]) * _UNIT_SECONDS[match[2]])


def format_duration(value: timedelta) -> str:
    """`value` as `parse_duration` reads it (whole seconds, else milliseconds)."""
    seconds = value.total_seconds()
    if (seconds and seconds < 1) or not seconds.is_integer():
        return f"{round(seconds * 1000)}ms"
    return f"{int(seconds)}s"


def _rate(text: str) -> Rate:
    if "/" not in text:
        return _probability(text)
    count, _, window = text.partition("/")
    if not count.isdigit() or int(count) < 1:
        raise ValueError(f"{text!r}: the budget must be a whole number of requests, e.g. 100/10s")
    span = parse_duration(window)
    if span <= timedelta():
        raise ValueError(f"{text!r}: the window must be longer than zero")
    return Budget(int(count), span)


def _whole_seconds(text: str) -> timedelta:
    value = parse_duration(text)
    if not value.total_seconds().is_integer() or value < timedelta(seconds=1):
        raise ValueError(f"{text!r}: Retry-After is a whole number of seconds, at least 1s")
    return value


def _seed(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an integer") from None


# spec name -> (FaultPlan attribute, reader); the order is the order `str(plan)` writes.
_ITEMS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "429": ("rate_limit", _rate),
    "429-write": ("write_limit", _rate),
    "503": ("unavailable", _probability),
    "latency": ("latency", parse_duration),
    "drop-after-write": ("drop_after_write", _probability),
    "search-lag": ("search_lag", parse_duration),
    "retry-after": ("retry_after", _whole_seconds),
    "webhook-duplicate": ("webhook_duplicate", _probability),
    "webhook-delay": ("webhook_delay", parse_duration),
    "seed": ("seed", _seed),
}


@dataclass
class _Window:
    start: datetime
    used: int = 0


@dataclass
class _Counter:
    """Fixed-window request counts per key (a user, or an issue)."""

    windows: dict[str, _Window] = field(default_factory=dict)

    def take(self, key: str, budget: Budget, now: datetime) -> datetime | None:
        """Count one request; None if within budget, else when its window ends."""
        span = budget.window.total_seconds()
        start = datetime.fromtimestamp(math.floor(now.timestamp() / span) * span, UTC)
        window = self.windows.get(key)
        if window is None or window.start != start:
            window = self.windows[key] = _Window(start)
        if window.used >= budget.requests:
            return start + budget.window
        window.used += 1
        return None


class Faults:
    """Injects the faults of a `FaultPlan` into the emulator's REST API (a `RequestHook`).

    Install it with `emulator.add_hook`; change the plan at any time with `set`. Counters of
    `N/T` budgets restart when the plan changes.
    """

    def __init__(self, emulator: JiraEmulator, plan: FaultPlan | str = "") -> None:
        self._emulator = emulator
        self._lock = threading.Lock()
        self.plan = FaultPlan()
        self._random = random.Random()
        self._users = _Counter()
        self._issues = _Counter()
        self.set(plan)

    def set(self, plan: FaultPlan | str) -> FaultPlan:
        """Inject the faults of `plan` (a `FaultPlan` or its spec) from now on."""
        chosen = FaultPlan.parse(plan) if isinstance(plan, str) else plan
        with self._lock:
            self.plan = chosen
            self._random = random.Random(chosen.seed)
            self._users = _Counter()
            self._issues = _Counter()
            self._emulator.search_lag = chosen.search_lag
        return chosen

    def draw(self, probability: float) -> bool:
        """True with `probability`, from the plan's (optionally seeded) random stream."""
        if probability <= 0.0:
            return False
        with self._lock:
            return self._random.random() < probability

    async def before(self, call: ApiCall) -> Response | None:
        plan = self.plan
        if plan.latency > timedelta():
            await asyncio.sleep(plan.latency.total_seconds())
        if self.draw(plan.unavailable):
            return _error(
                503,
                "Service Unavailable. Please retry later.",
                {"Retry-After": _seconds(plan.retry_after)},
            )
        user_key = call.user.account_id if call.user is not None else "anonymous"
        refused = self._refuse(
            plan.rate_limit, self._users, user_key, "jira-burst-based", call, plan
        )
        if refused is None and call.is_write and call.issue_keys:
            # `/issue/10001` and `/issue/demo-1` are one issue: count them together
            named = call.issue_keys[0]
            issue = self._emulator.store.get(named)
            refused = self._refuse(
                plan.write_limit,
                self._issues,
                issue.key if issue is not None else named,
                "jira-per-issue-on-write",
                call,
                plan,
            )
        return refused

    def _refuse(
        self,
        rate: Rate,
        counter: _Counter,
        key: str,
        reason: RateLimitReason,
        call: ApiCall,
        plan: FaultPlan,
    ) -> Response | None:
        if isinstance(rate, Budget):
            with self._lock:
                reset = counter.take(key, rate, call.received_at)
            if reset is None:
                return None
            wait = max(1, math.ceil((reset - call.received_at).total_seconds()))
            return _rate_limited(reason, rate.requests, wait, call.received_at)
        if self.draw(rate):
            wait = int(plan.retry_after.total_seconds())
            return _rate_limited(reason, NOMINAL_LIMIT, wait, call.received_at)
        return None

    async def after(self, call: ApiCall, response: Response) -> Response | None:
        if call.is_write and response.status_code < 400 and self.draw(self.plan.drop_after_write):
            raise DropConnection(f"{call.method} {call.path}: dropped after the write")
        return None


def _seconds(value: timedelta) -> str:
    return str(int(value.total_seconds()))


def _error(status: int, message: str, headers: dict[str, str]) -> Response:
    return JSONResponse({"errorMessages": [message], "errors": {}}, status, headers=headers)


def _rate_limited(reason: RateLimitReason, limit: int, wait: int, now: datetime) -> Response:
    # Jira documents X-RateLimit-Reset as the request time plus Retry-After, as yyyy-MM-ddTHH:mmZ
    reset = (now + timedelta(seconds=wait)).astimezone(UTC)
    headers = {
        "Retry-After": str(wait),
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": "0",  # refused: nothing of the budget is left
        "X-RateLimit-Reset": reset.strftime("%Y-%m-%dT%H:%MZ"),
        "RateLimit-Reason": reason,
    }
    return _error(429, "Rate limit exceeded.", headers)
