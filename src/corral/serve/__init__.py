"""`corral serve`: the operator's long-running host.

It loads every plugin, serves management endpoints over HTTP (Starlette + uvicorn), reloads
plugins as bundles and corral.yaml change, and stops gracefully on SIGTERM/SIGINT. `ServeApp`
wires the parts together; `serve` runs it the way the command line does.
"""

from ._app import ServeApp, Service
from ._server import build_server, serve

__all__ = ["ServeApp", "Service", "build_server", "serve"]
