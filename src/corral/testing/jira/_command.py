"""`corral jira-emulator`: serve an emulator on a port until Ctrl-C (options: corral.cli)."""

from __future__ import annotations

import argparse
import contextlib
import gc

from ..._errors import ConfigError
from ._emulator import JiraEmulator
from ._server import base_url, bind, server_for
from ._users import DEFAULT_USERS
from ._webhooks import WebhookTarget

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; the emulator is closed (webhooks stopped, state saved) after."""
    if args.webhook_secret and not args.webhook:
        raise ConfigError("--webhook-secret needs at least one --webhook URL")
    try:
        targets = [WebhookTarget(url, args.webhook_secret) for url in args.webhook or ()]
        emulator = JiraEmulator(
            project=args.project,
            issues=args.issues,
            seed=args.seed,
            users=args.user or DEFAULT_USERS,
            state_file=args.state,
            faults=args.faults,
            webhooks=targets,
        )
    except ValueError as error:
        raise ConfigError(f"jira-emulator: {error}") from None
    try:
        try:
            sock = bind(args.host, args.port)
        except OSError as error:
            raise ConfigError(
                f"jira-emulator: cannot listen on {args.host}:{args.port}: {error.strerror}"
            ) from None
        # The seeded issues live as long as the server: keep the collector from walking them
        # on every full collection (a pause of tenths of a second with 10,000 issues).
        gc.freeze()
        url = emulator.base_url = base_url(sock)
        print(f"Jira emulator at {url}", flush=True)
        print(
            f"  project {emulator.project}, {len(emulator.store)} issues, "
            f"state {'in ' + args.state if args.state else 'in memory'}",
            flush=True,
        )
        for user in emulator.users:
            print(
                f"  user {user.email}  api token {user.api_token}  accountId {user.account_id}"
                f"  timeZone {user.time_zone}",
                flush=True,
            )
        print(f"  admin API {url}/_emulator/   (Ctrl-C to stop)", flush=True)
        # uvicorn re-raises the Ctrl-C it shut down on; stopping is this command's normal end.
        with contextlib.suppress(KeyboardInterrupt):
            server_for(emulator).run(sockets=[sock])
    finally:
        emulator.close()
    return 0
