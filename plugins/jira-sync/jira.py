"""The Jira REST client: JSON in and out over the host's `http` import.

Credentials never pass through here: the operator binds them to the Jira host and the host adds
them on the way out. Every request goes through `_send`, the one place that touches the import.
"""

import json
import random
import time
from urllib.parse import quote, urlencode

from componentize_py_types import Err
from corral_sdk import errors, http
from wit_world.imports import types

RETRY_STATUSES = (429, 503)
MAX_BACKOFF_S = 30.0
MAX_NETWORK_RETRIES = 3
"""A Jira that cannot be reached this often in a row fails the call rather than the slice
quietly making no progress."""


class OutOfTime(Exception):
    """The slice's time budget ran out (while waiting out a rate limit, or before a request)."""


class JiraError(Exception):
    """Jira answered with an error status (or could not be reached)."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


class Budget:
    """A slice's deadline: work starts only while there is time left for it."""

    def __init__(self, budget_ms):
        self.started = time.monotonic()
        self.deadline = self.started + budget_ms / 1000

    def left(self):
        return self.deadline - time.monotonic()

    def spent(self, fraction):
        """Whether `fraction` of the budget is used: the point to stop starting new work."""
        total = self.deadline - self.started
        return time.monotonic() - self.started >= fraction * total

    def room_for(self, step_s, fraction=0.6):
        """Whether another step as long as `step_s` can start: before `fraction` of the
        budget is used, and ending before 90% of it (a slow machine makes pages slow)."""
        total = self.deadline - self.started
        used = time.monotonic() - self.started
        return used < fraction * total and used + step_s < 0.9 * total


def _send(method, url, headers, body, timeout_ms, started=None):
    """The one place that sends through the host's http import: (status, headers, body text).
    `started`: the `http.start` of this very request, whose answer is taken instead."""
    if started is not None:
        response = started.result()
    else:
        response = http.send(method, url, headers=headers, body=body, timeout_ms=timeout_ms)
    return response.status, response.headers, response.text()


def _retry_after(headers, attempt):
    """Seconds to wait: the server's Retry-After if it gave one, else exponential backoff."""
    for name, value in headers:
        if name.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                break
    return min(MAX_BACKOFF_S, 0.25 * 2**attempt)


def _error_message(status, body):
    try:
        data = json.loads(body)
    except ValueError:
        return f"HTTP {status}: {body[:200]}"
    messages = list(data.get("errorMessages") or []) if isinstance(data, dict) else []
    if isinstance(data, dict):
        messages += [f"{k}: {v}" for k, v in (data.get("errors") or {}).items()]
    return f"HTTP {status}: " + ("; ".join(messages) or "no message")


def _search(jql, fields, page_size, token):
    body = {"jql": jql, "fields": fields, "maxResults": page_size}
    if token:
        body["nextPageToken"] = token
    return body


def _page(found):
    issues = found.get("issues", [])
    return issues, (None if found.get("isLast") else found.get("nextPageToken"))


class Jira:
    """Jira's REST API at `base_url`, version `api_version` (3: ADF rich text, 2: wiki markup)."""

    def __init__(self, base_url, api_version, budget):
        self.base = f"{base_url.rstrip('/')}/rest/api/{api_version}"
        self.api_version = api_version
        self.budget = budget
        self.requests = 0

    def request(self, method, path, params=None, body=None, idempotent=True):
        """The decoded JSON answer (None for an empty body).

        429 and 503 are retried after `Retry-After` (or a backoff), with jitter, while the
        budget lasts; then `OutOfTime` ends the slice. A request that failed on the way
        (connection refused or reset) is retried the same way if it is `idempotent`: a create
        whose answer was lost must not be sent twice. Other errors raise `JiraError`.
        """
        return self._exchange(method, path, idempotent, *self._prepared(path, params, body))

    def start(self, method, path, params=None, body=None):
        """`request` of an idempotent request, sent now in the background: calling the returned
        function waits for its answer, so the sync works while it travels."""
        url, headers, data = self._prepared(path, params, body)
        try:
            left_ms = max(1, int(self.budget.left() * 1000))
            started = http.start(method, url, headers=headers, body=data, timeout_ms=left_ms)
        except Err:  # refused before it went out: sent again when waited for, which decides
            started = None
        return lambda: self._exchange(method, path, True, url, headers, data, started)

    def _prepared(self, path, params, body):
        url = self.base + path + ("?" + urlencode(params) if params else "")
        headers = [("Accept", "application/json")]
        data = b""
        if body is not None:
            headers.append(("Content-Type", "application/json"))
            data = json.dumps(body).encode()
        return url, headers, data

    def _exchange(self, method, path, idempotent, url, headers, data, started=None):
        attempt = 0
        while True:
            left_ms = int(self.budget.left() * 1000)
            if left_ms <= 50:
                raise OutOfTime(f"{method} {path}")
            self.requests += 1
            try:
                status, response_headers, response = _send(
                    method, url, headers, data, left_ms, started
                )
            except Err as exc:
                if isinstance(exc.value, types.PluginError_RateLimited):
                    status, response = 429, ""
                    response_headers = [("Retry-After", str(exc.value.value.retry_after_ms / 1000))]
                elif isinstance(exc.value, types.PluginError_Timeout):
                    raise OutOfTime(f"{method} {path}") from None
                elif (
                    idempotent
                    and attempt < MAX_NETWORK_RETRIES
                    and isinstance(exc.value, types.PluginError_Unavailable)
                ):
                    status, response, response_headers = 503, "", []
                else:
                    raise JiraError(0, f"{errors.kind_of(exc)}: {exc.value.value}") from None
            finally:
                started = None  # taken: a retry sends again
            if status in RETRY_STATUSES:
                wait = _retry_after(response_headers, attempt) * random.uniform(1.0, 1.25)
                attempt += 1
                if wait >= self.budget.left() - 0.05:
                    raise OutOfTime(f"{method} {path}: rate limited")
                time.sleep(wait)
                continue
            if status >= 400:
                raise JiraError(status, _error_message(status, response))
            return json.loads(response) if response and not response.isspace() else None

    # --- the operations the sync uses -----------------------------------------------------------

    def search(self, jql, fields, page_size, token=None):
        """One page of `/search/jql`: (issues, nextPageToken or None)."""
        return _page(
            self.request("POST", "/search/jql", body=_search(jql, fields, page_size, token))
        )

    def start_search(self, jql, fields, page_size, token=None):
        """`search`, sent now: calling the returned function waits for the page."""
        answer = self.start("POST", "/search/jql", body=_search(jql, fields, page_size, token))
        return lambda: _page(answer())

    def issue(self, key, fields):
        return self.request("GET", f"/issue/{quote(str(key))}", {"fields": ",".join(fields)})

    def update(self, key, fields):
        self.request("PUT", f"/issue/{quote(str(key))}", body={"fields": fields})

    def create(self, fields):
        return self.request("POST", "/issue", body={"fields": fields}, idempotent=False)

    def delete(self, key):
        self.request("DELETE", f"/issue/{quote(str(key))}")

    def transitions(self, key):
        found = self.request("GET", f"/issue/{quote(str(key))}/transitions")
        return found.get("transitions", [])

    def transition(self, key, transition_id):
        self.request(
            "POST",
            f"/issue/{quote(str(key))}/transitions",
            body={"transition": {"id": transition_id}},
            idempotent=False,
        )

    def fields(self):
        return self.request("GET", "/field")

    def myself(self):
        return self.request("GET", "/myself")
