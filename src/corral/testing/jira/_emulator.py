"""`JiraEmulator`: the store, the instance's metadata and the ASGI app, wired together."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from ._admin import admin_routes
from ._catalog import Catalog
from ._clock import Clock
from ._faults import FaultPlan, Faults
from ._fields import FIELDS_BY_ID, RenderContext, change_item
from ._hooks import ChangeListener, RequestHook
from ._model import Issue, User
from ._render import Renderer
from ._requestlog import RequestLog
from ._search import Searcher
from ._seed import seed_issues
from ._store import IssueStore
from ._users import DEFAULT_USERS, parse_user
from ._webhooks import Webhooks, WebhookTarget
from ._workflow import DEFAULT_WORKFLOW, Workflow

__all__ = ["DEFAULT_MAX_BODY_BYTES", "JiraEmulator"]

DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024


class JiraEmulator:
    """A local Jira Cloud: one project, its issues, and the REST API over them as an ASGI app.

    `users` are `User`s or ``"email:token[:time zone]"`` strings; the first is the reporter of
    seeded issues. With `state_file` the issues live in that SQLite file across restarts (and
    `issues` seeds only an empty file); without it they live in memory.

    Its test instruments: `requests` (the request log), `faults` (set from a spec such as
    ``"429:0.1,latency:50ms"``), `webhooks` (POSTed on every change to `webhooks` targets),
    and the `/_emulator/` admin API over all three.
    """

    def __init__(
        self,
        *,
        project: str = "DEMO",
        issues: int = 0,
        seed: int = 0,
        users: Sequence[User | str] = DEFAULT_USERS,
        state_file: str | os.PathLike[str] | None = None,
        clock: Clock | None = None,
        workflow: Workflow = DEFAULT_WORKFLOW,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        base_url: str = "http://127.0.0.1",
        faults: FaultPlan | str = "",
        webhooks: Sequence[WebhookTarget] = (),
    ) -> None:
        if not users:
            raise ValueError("the emulator needs at least one user")
        self.users: tuple[User, ...] = tuple(
            u if isinstance(u, User) else parse_user(u, index=i) for i, u in enumerate(users)
        )
        self.clock = clock or Clock()
        self.catalog = Catalog(project_key=project, workflow=workflow)
        self.max_body_bytes = max_body_bytes
        #: Where clients reach the emulator; `self` links and webhook payloads use it.
        self.base_url = base_url
        users_by_id = {u.account_id: u for u in self.users}
        describe_ctx = RenderContext(base="", api=3, catalog=self.catalog, users=users_by_id)
        self.store = IssueStore(
            self.catalog.project_key,
            self.clock,
            lambda field_id, old, new: change_item(FIELDS_BY_ID[field_id], old, new, describe_ctx),
            state_file=state_file,
        )
        self.renderer = Renderer(self.catalog, self.users, self.store)
        self.searcher = Searcher(self.store, self.catalog, self.users)
        self.hooks: list[RequestHook] = []
        from ._app import build_app  # the app reads the emulator's attributes set above

        self.app: Starlette = build_app(self)
        # The request log goes first, so it also records requests that faults answer.
        self.requests = RequestLog()
        self.add_hook(self.requests)
        self.faults = Faults(self, faults)
        self.add_hook(self.faults)
        self.webhooks = Webhooks(self, tuple(webhooks))
        self.add_routes(
            admin_routes(self, faults=self.faults, requests=self.requests, webhooks=self.webhooks)
        )
        if issues and self.store.is_empty():
            self.seed(issues, seed=seed)

    @property
    def project(self) -> str:
        return self.catalog.project_key

    def user(self, email_or_account_id: str) -> User:
        """The configured user with this email or account id."""
        for user in self.users:
            if email_or_account_id in (user.email, user.account_id):
                return user
        raise KeyError(email_or_account_id)

    # -- data ---------------------------------------------------------------------------

    def seed(self, issues: int, *, seed: int = 0) -> None:
        """Add `issues` deterministic issues (the same `seed` gives the same issues)."""
        seed_issues(self.store, self.catalog, self.users, self.clock, count=issues, seed=seed)

    def reset(self, *, issues: int = 0, seed: int = 0) -> None:
        """Delete every issue and changelog entry (numbering restarts), then seed `issues`."""
        self.store.clear()
        if issues:
            self.seed(issues, seed=seed)

    @property
    def search_lag(self) -> timedelta:
        """How long a write stays invisible to `/search/jql` (zero: at once)."""
        return self.store.search_lag

    @search_lag.setter
    def search_lag(self, lag: timedelta) -> None:
        self.store.search_lag = lag

    def render_issue(self, issue: Issue, *, api: int = 3) -> dict[str, Any]:
        """`issue` with all its fields, as `GET /rest/api/{api}/issue/{key}` returns it."""
        return self.renderer.issue_dict(issue, base_url=self.base_url, api=api)

    # -- seams for test instruments -----------------------------------------------------

    def on_change(self, listener: ChangeListener) -> Callable[[], None]:
        """Call `listener` on every create, update and delete; returns an unsubscribe function."""
        return self.store.subscribe(listener)

    def add_hook(self, hook: RequestHook) -> None:
        """Run `hook` around every `/rest/...` request (hooks run in the order added)."""
        self.hooks.append(hook)

    def remove_hook(self, hook: RequestHook) -> None:
        self.hooks.remove(hook)

    def add_routes(self, routes: Sequence[BaseRoute]) -> None:
        """Serve `routes` too (e.g. the `/_emulator/` admin API); they bypass auth and hooks."""
        self.app.router.routes.extend(routes)

    def close(self) -> None:
        """Stop webhook deliveries and close the state file, if any."""
        self.webhooks.close()
        self.store.close()
