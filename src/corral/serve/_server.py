"""Running a `ServeApp` under uvicorn until SIGTERM or SIGINT, then stopping gracefully."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import math
import signal
import socket
import threading
from collections.abc import Generator
from pathlib import Path
from types import FrameType

import uvicorn

from .._errors import ConfigError
from ..capabilities.http._secrets import Secret, resolve_secret
from ..config import load_host_config
from ..host import PluginHost
from ._app import ServeApp

__all__ = ["build_server", "serve"]

_log = logging.getLogger("corral.serve")


class _Server(uvicorn.Server):
    """uvicorn's server, exiting normally after a signal instead of re-raising it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        signals = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in signals}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit:  # a second signal: stop waiting for calls in flight
            _log.warning("%s again: stopping now", signal.Signals(sig).name)
            self.force_exit = True
            return
        grace = self.config.timeout_graceful_shutdown
        _log.info(
            "%s: draining calls in flight (up to %ss), then stopping",
            signal.Signals(sig).name,
            grace,
        )
        self.should_exit = True

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        for server in self.servers:
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                _log.info("serving on http://%s:%s", host, port)


def build_server(app: ServeApp, host: str, port: int) -> uvicorn.Server:
    """A uvicorn server for `app`: ``run()`` serves until SIGTERM/SIGINT (in the main thread)
    or until ``should_exit`` is set, then drains calls in flight for the grace period."""
    config = uvicorn.Config(
        app.asgi(),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=math.ceil(app.grace_period),
    )
    return _Server(config)


def serve(config_path: Path, *, host: str | None = None, port: int | None = None) -> None:
    """`corral serve`: load corral.yaml, serve until SIGTERM/SIGINT, drain, return."""
    config = load_host_config(config_path)
    options = config.serve
    host = host or options.host
    port = options.port if port is None else port
    for plugin_dir in config.plugin_dirs:  # the only reload failure worth refusing to start
        if not plugin_dir.is_dir():
            raise ConfigError(f"{config_path}: plugin dir {plugin_dir} is not a directory")
    token: Secret | None = resolve_secret(options.token) if options.token else None
    if token is None and not _is_loopback(host):
        raise ConfigError(
            f"{config_path}: serve.token: serving on {host} (beyond loopback) needs a bearer "
            "token; set serve.token to env:NAME or file:PATH"
        )
    with PluginHost(config=config) as plugin_host:
        build_server(ServeApp(plugin_host, config_path=config_path, token=token), host, port).run()
    _log.info("stopped")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
