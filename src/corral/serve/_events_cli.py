"""``corral events``: the webhook event queue from the command line, while the server runs.

`add_events_parser` adds the command; each subcommand sets ``events_handler(args, queue)``,
which prints its result and returns the exit code. The queue is the server's own SQLite file,
so a retried event is picked up by a running server within a second.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import UTC, datetime

from .._cli_output import print_table
from .._errors import NotFound
from ._queue import EventQueue, QueuedEvent

__all__ = ["add_events_parser"]


def add_events_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``events`` command (list, retry, drop) to `subparsers`."""
    events = subparsers.add_parser("events", help="the queue of webhook events and dead letters")
    commands = events.add_subparsers(dest="events_command", metavar="COMMAND", required=True)

    list_ = commands.add_parser("list", help="queued events, oldest first")
    list_.add_argument("--plugin", help="only this plugin's events")
    list_.add_argument(
        "--state",
        choices=["pending", "delivered", "dead"],
        help="only events in this state (dead: the dead-letter list)",
    )
    list_.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    list_.add_argument("--json", action="store_true", help="print a JSON array")
    list_.set_defaults(events_handler=_list)

    retry = commands.add_parser("retry", help="queue dead events again, attempts reset")
    retry.add_argument("seq", type=int, nargs="+", help="event numbers, as `list` shows them")
    retry.set_defaults(events_handler=_retry)

    drop = commands.add_parser("drop", help="delete pending or dead events")
    drop.add_argument("seq", type=int, nargs="+", help="event numbers, as `list` shows them")
    drop.set_defaults(events_handler=_drop)


def _json(event: QueuedEvent) -> dict[str, object]:
    return {
        "seq": event.seq,
        "plugin": event.plugin,
        "delivery_id": event.delivery_id,
        "type": event.type,
        "state": event.state,
        "attempts": event.attempts,
        "received_at": _iso(event.received_at_ms),
        "last_error": event.last_error,
    }


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


def _list(args: argparse.Namespace, queue: EventQueue) -> int:
    events = queue.list(plugin=args.plugin, state=args.state, limit=args.limit)
    if args.json:
        print(json.dumps([_json(e) for e in events], indent=2))
        return 0
    if not events:
        print("no events")
        return 0
    print_table(
        ("SEQ", "PLUGIN", "STATE", "ATTEMPTS", "RECEIVED", "TYPE", "DELIVERY", "LAST ERROR"),
        (
            (e.seq, e.plugin, e.state, e.attempts, _iso(e.received_at_ms), e.type,
             e.delivery_id, e.last_error)
            for e in events
        ),
        right={0, 3},
    )  # fmt: skip
    return 0


def _each(seqs: list[int], act: Callable[[int], bool], done: str, refusal: str) -> int:
    missing = [seq for seq in seqs if not act(seq)]
    for seq in seqs:
        if seq not in missing:
            print(f"{done} event {seq}")
    if missing:
        raise NotFound(f"no {refusal} event {', '.join(map(str, missing))}")
    return 0


def _retry(args: argparse.Namespace, queue: EventQueue) -> int:
    return _each(args.seq, queue.retry, "queued", "dead")


def _drop(args: argparse.Namespace, queue: EventQueue) -> int:
    return _each(args.seq, queue.drop, "dropped", "pending or dead")
