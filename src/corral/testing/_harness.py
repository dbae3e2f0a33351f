"""`PluginHarness`: one plugin, built from its source, in a host of its own, for one test."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from .._errors import NotFound, PluginUnavailable
from ..build import build_cached, link_bundle
from ..host import PluginHost
from ..kvstore import SQLiteKVStore
from ..sync import SyncReport
from ..tasks import TaskStore
from ._logs import LogCapture, LogLine
from ._network import ASGIApp, Handler, TestNetwork

__all__ = ["KvView", "PluginHarness"]


class KvView:
    """The plugin's own keys in the host's key-value store, to seed and to check."""

    def __init__(self, store: SQLiteKVStore, plugin: str) -> None:
        self._store = store
        self._plugin = plugin

    def get(self, key: str) -> bytes | None:
        """The value at `key`, or None when it is not set."""
        try:
            return self._store.get(self._plugin, key)
        except NotFound:
            return None

    def set(self, key: str, value: bytes | str) -> None:
        """Set `key` (text is stored as UTF-8), as the plugin's `kv.set` would."""
        self._store.set(self._plugin, key, value.encode() if isinstance(value, str) else value)

    def keys(self, prefix: str = "") -> list[str]:
        """Every key starting with `prefix`, in order."""
        keys: list[str] = []
        cursor: str | None = None
        while True:
            page, cursor = self._store.list_keys(self._plugin, prefix, cursor, 1000)
            keys += page
            if cursor is None:
                return keys


class PluginHarness:
    """A plugin loaded from its source directory into a host of its own, for a test.

    The plugin is built first unless a build of the same sources is cached (`build_dir`,
    keyed by a hash of the sources, the SDK, the WIT and the toolchain); its component is
    compiled once per machine (the host's compiled cache). Its tasks and kv live in SQLite
    under `data_dir` (a temporary directory by default), as in production.

    `grants` (default: every permission the manifest requests), `config`, `allowed_hosts` (the
    operator's ``http.allowed_hosts``) and `credentials` are what the operator would write under
    ``plugins.<name>``; `settings` takes any other key of that block (``limits``, ``http``,
    ``log``...).

    HTTP: the plugin's requests go through every check of production (allowlist, policy,
    address guard, credentials, limits, redirects, masking), then to `http` (a function from
    `httpx.Request` to `httpx.Response`) or `asgi` (an ASGI app) instead of the internet.
    Names resolve to `PUBLIC_ADDRESS` unless `dns` maps them (to test the address guard, map
    one to an internal address). With neither, a request that passes the checks fails as
    ``unavailable``.

    Close it (or use it as a context manager) to close the host and remove the temporary data.
    """

    def __init__(
        self,
        source: str | Path,
        *,
        grants: Sequence[str] | None = None,
        config: Mapping[str, Any] | None = None,
        http: Handler | None = None,
        asgi: ASGIApp | None = None,
        allowed_hosts: Sequence[str] | None = None,
        credentials: Sequence[Mapping[str, Any]] = (),
        dns: Mapping[str, str | Sequence[str]] | None = None,
        settings: Mapping[str, Any] | None = None,
        data_dir: str | Path | None = None,
        build_dir: str | Path | None = None,
    ) -> None:
        bundle = build_cached(Path(source), None if build_dir is None else Path(build_dir))
        self.name = bundle.manifest.name
        self._stack = ExitStack()
        try:
            if data_dir is None:
                data_dir = self._stack.enter_context(tempfile.TemporaryDirectory(prefix="corral-"))
            plugins = Path(data_dir) / "plugins"
            link_bundle(bundle, plugins)
            self._network = TestNetwork(http, asgi, dns)
            self._stack.callback(self._network.close)
            self._capture = LogCapture(self.name)
            self._stack.callback(self._capture.close)
            self.host = PluginHost(
                [plugins],
                data_dir=Path(data_dir) / "data",
                plugins={
                    self.name: _operator_settings(
                        sorted(bundle.manifest.requested_permissions) if grants is None else grants,
                        config,
                        allowed_hosts,
                        credentials,
                        settings,
                    )
                },
                network=self._network.simulated(),
            )
            """The host itself, for what the harness does not wrap (`conflicts`, `refresh`...)."""
            self._stack.callback(self.host.close)
            (info,) = self.host.load()
            if info.state != "loaded":
                raise PluginUnavailable(f"plugin {self.name!r} did not load: {info.reason}")
        except BaseException:
            self._stack.close()
            raise

    def call(self, command: str, input: Any = None) -> Any:
        """Run `command` with `input`; returns the decoded result, raises like `PluginHost.call`.

        A result is checked against the command's declared `output_schema`, if any
        (`ProtocolError`), so a test catches a plugin that breaks its own declaration.
        If the test's HTTP handler raised during the call (other than a simulated network
        failure), that exception is raised instead: the bug is in the test, not the plugin.
        """
        try:
            return self.host.call(self.name, command, input, check_output=True)
        finally:
            self._network.raise_test_error()

    def send_event(self, type: str, payload: Any = None, **options: Any) -> None:
        """Deliver an event to the plugin's `on-event`, as `PluginHost.send_event` does."""
        try:
            self.host.send_event(self.name, type, payload, **options)
        finally:
            self._network.raise_test_error()

    def sync(self, *, full: bool = False, dry_run: bool = False) -> SyncReport:
        """Run a sync plugin until its run is done, as `PluginHost.sync` does."""
        try:
            return self.host.sync(self.name, full=full, dry_run=dry_run)
        finally:
            self._network.raise_test_error()

    @property
    def tasks(self) -> TaskStore:
        """The host's task store (``get``, ``query``, ``put_many``...)."""
        return self.host.task_store

    @property
    def kv(self) -> KvView:
        """The plugin's keys in the key-value store."""
        return KvView(self.host.kv_store, self.name)

    @property
    def logs(self) -> list[LogLine]:
        """Every line logged so far, the plugin's and the host's about it, in order."""
        return list(self._capture.lines)

    @property
    def stdout(self) -> str:
        """What the guest printed so far, one line per line."""
        return "\n".join(self._capture.output["stdout"])

    @property
    def stderr(self) -> str:
        """What the guest wrote to stderr so far (a Python traceback, say)."""
        return "\n".join(self._capture.output["stderr"])

    @property
    def http_requests(self) -> list[httpx.Request]:
        """Every request that reached the test's network, in order (each redirect hop too).

        They are as they went on the wire: with the credentials the host added (the test
        plays the server they were meant for) and the host's own headers (Accept-Encoding).
        Requests the host refused never get here; their refusal is the call's result.
        """
        return list(self._network.requests)

    def close(self) -> None:
        """Close the host and remove what the harness created."""
        self._stack.close()

    def __enter__(self) -> PluginHarness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _operator_settings(
    grants: Sequence[str],
    config: Mapping[str, Any] | None,
    allowed_hosts: Sequence[str] | None,
    credentials: Sequence[Mapping[str, Any]],
    settings: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The ``plugins.<name>`` block the arguments describe."""
    block = dict(settings or {})
    block["grant"] = list(grants)
    block["config"] = dict(config or {})
    if allowed_hosts is not None:
        block["http"] = {**block.get("http", {}), "allowed_hosts": list(allowed_hosts)}
    if credentials:
        block["credentials"] = [dict(c) for c in credentials]
    return block
