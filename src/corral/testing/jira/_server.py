"""Running an emulator over real HTTP on loopback, in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn

from ._drop import DroppableH11Protocol
from ._emulator import JiraEmulator
from ._model import User

__all__ = ["EmulatorHandle", "bind", "serve"]

_START_TIMEOUT = 10.0


@dataclass(frozen=True)
class EmulatorHandle:
    """A running emulator: where it listens, who may call it, and the emulator itself."""

    url: str
    emulator: JiraEmulator

    @property
    def users(self) -> tuple[User, ...]:
        return self.emulator.users

    def basic_auth(self, user: User | int = 0) -> tuple[str, str]:
        """`(email, api_token)` of `user` (a `User` or an index into `users`), for httpx."""
        chosen = self.users[user] if isinstance(user, int) else user
        return chosen.basic_auth()


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on `host:port` (port 0: a free one), for uvicorn to serve on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio disables Nagle only on sockets whose proto is IPPROTO_TCP,
    # and with Nagle on, every response (head and body are two writes) stalls ~40 ms on the
    # client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def base_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def server_for(emulator: JiraEmulator) -> uvicorn.Server:
    # No lifespan: the emulator needs no startup work. Access logs would drown test output.
    # The h11 protocol with a way to reset a connection unanswered (drop-after-write).
    config = uvicorn.Config(
        emulator.app,
        lifespan="off",
        log_level="warning",
        access_log=False,
        http=DroppableH11Protocol,
    )
    return uvicorn.Server(config)


@contextmanager
def serve(
    emulator: JiraEmulator, host: str = "127.0.0.1", port: int = 0
) -> Iterator[EmulatorHandle]:
    """Serve `emulator` on `host:port` (port 0: a free port) until the block ends."""
    sock = bind(host, port)
    url = base_url(sock)
    emulator.base_url = url
    server = server_for(emulator)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="jira-emulator", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + _START_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError(f"the Jira emulator did not start on {url}")
        time.sleep(0.01)
    try:
        yield EmulatorHandle(url=url, emulator=emulator)
    finally:
        server.should_exit = True
        thread.join(timeout=_START_TIMEOUT)
        sock.close()
