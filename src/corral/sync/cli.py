"""``corral sync`` and ``corral conflicts``: drive a sync plugin from the command line.

`add_sync_parsers` adds both commands; each sets ``sync_handler(args, host)``, called with a
loaded `PluginHost`, which prints its result and returns the exit code. Progress goes to stderr
(a rich progress bar on a terminal, one plain line per slice otherwise), results to stdout, so
``--json`` output stays parseable.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from types import TracebackType
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from .._cli_input import json_option
from .._cli_output import print_table
from .._errors import ConfigError, PluginError
from .._exit import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from ._model import Conflict, Counts, SyncProgress, SyncReport

if TYPE_CHECKING:
    from ..host import PluginHost

__all__ = ["add_sync_parsers"]

_OUTCOMES = ("created", "updated", "unchanged", "conflicts", "errors", "deleted")
_ERRORS_SHOWN = 20


def add_sync_parsers(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``sync NAME`` and ``conflicts NAME list|show|resolve`` to `subparsers`."""
    sync = subparsers.add_parser(
        "sync", help="run a sync plugin until its run is done (resuming one that was stopped)"
    )
    sync.add_argument("name", metavar="NAME")
    sync.add_argument("--full", action="store_true", help="re-read everything, not just changes")
    sync.add_argument("--dry-run", action="store_true", help="report changes, write nothing")
    sync.add_argument("--json", action="store_true", help="print the report as JSON")
    sync.set_defaults(sync_handler=_sync)

    conflicts = subparsers.add_parser("conflicts", help="list and resolve a sync's conflicts")
    conflicts.add_argument("name", metavar="NAME")
    commands = conflicts.add_subparsers(dest="conflicts_command", metavar="COMMAND", required=True)
    listing = commands.add_parser("list", help="every open conflict")
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    listing.set_defaults(sync_handler=_list)
    show = commands.add_parser("show", help="one conflict: base, local and remote values")
    show.add_argument("id", metavar="ID")
    show.add_argument("--json", action="store_true", help="print the conflict's JSON object")
    show.set_defaults(sync_handler=_show)
    resolve = commands.add_parser("resolve", help="settle a conflict and write the result")
    resolve.add_argument("id", metavar="ID")
    choice = resolve.add_mutually_exclusive_group(required=True)
    choice.add_argument("--take", choices=("local", "remote"), help="keep this side's value")
    choice.add_argument("--value", metavar="JSON", help="use this value instead (JSON)")
    resolve.set_defaults(sync_handler=_resolve)


# -- sync -----------------------------------------------------------------------------------


def _sync(args: argparse.Namespace, host: PluginHost) -> int:
    try:
        with _progress_view(args.name) as view:
            report = host.sync(
                args.name, full=args.full, dry_run=args.dry_run, on_progress=view.update
            )
    except KeyboardInterrupt:
        print(
            f"corral: sync of {args.name} interrupted between slices; "
            f"run `corral sync {args.name}` again to resume",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except PluginError as error:
        # The driver's input is always well formed, so a sync plugin answering invalid-input
        # is refusing its configuration (sync-protocol.md, "Errors").
        if error.kind == "invalid-input":
            raise ConfigError(f"{args.name}: {error.message}") from None
        raise
    if args.full and report.mode != "full":
        print(
            f"corral: finished the {report.mode} run that was in progress; "
            "run again for the full sync",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps(asdict(report) | {"clean": report.clean}, indent=2, sort_keys=True))
    else:
        _print_summary(args.name, report)
    return EXIT_OK if report.clean else EXIT_FAILED


class _PlainView:
    """One line per slice on stderr, for logs and pipes."""

    def __init__(self, name: str) -> None:
        self.name = name

    def update(self, progress: SyncProgress) -> None:
        counts = progress.counts.get(progress.phase)
        if counts is None:  # "finished", or a phase without counts of its own
            counts = _total(progress.counts)
        left = "" if progress.remaining is None else f", {progress.remaining} left"
        done = ", ".join(f"{k} {v}" for k, v in _nonzero(counts).items()) or "nothing yet"
        print(
            f"{self.name}: {progress.phase} {counts.processed}{left}: {done}",
            file=sys.stderr,
            flush=True,
        )

    def __enter__(self) -> _PlainView:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        pass


class _BarView(_PlainView):
    """A rich progress bar per phase on the terminal."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._progress = Progress(
            TextColumn("[bold]{task.description:<5}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        )
        self._bars: dict[str, TaskID] = {}

    def update(self, progress: SyncProgress) -> None:
        for phase, counts in progress.counts.items():
            current = phase == progress.phase
            if phase not in self._bars and not (current or counts.processed):
                continue
            done = counts.processed
            if current and progress.remaining is not None:
                total: float | None = done + progress.remaining
            else:
                total = done if (progress.done or not current) and done else None
            detail = ", ".join(f"{k} {v}" for k, v in _nonzero(counts).items())
            if phase not in self._bars:
                self._bars[phase] = self._progress.add_task(phase, total=total, detail=detail)
            self._progress.update(self._bars[phase], completed=done, total=total, detail=detail)

    def __enter__(self) -> _BarView:
        self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()


def _progress_view(name: str) -> _PlainView:
    return _BarView(name) if sys.stderr.isatty() else _PlainView(name)


def _print_summary(name: str, report: SyncReport) -> None:
    print(f"{name}: {report.mode} sync{' (dry run)' if report.dry_run else ''}")
    print_table(
        ("DIRECTION", *(o.upper() for o in _OUTCOMES)),
        (
            (direction, *(getattr(counts, o) for o in _OUTCOMES))
            for direction, counts in report.counts.items()
        ),
        right=range(1, len(_OUTCOMES) + 1),
    )
    seconds = report.duration_ms / 1000
    print(f"took {seconds:.1f} s in {report.calls} call{'s' * (report.calls != 1)}")
    for error in report.errors[:_ERRORS_SHOWN]:
        print(f"error: {error}")
    if len(report.errors) > _ERRORS_SHOWN:
        print(f"… and {len(report.errors) - _ERRORS_SHOWN} more errors")
    if report.open_conflicts:
        print(
            f"{report.open_conflicts} open conflict{'s' * (report.open_conflicts != 1)}: "
            f"corral conflicts {name} list"
        )


def _total(counts: dict[str, Counts]) -> Counts:
    return Counts(*(sum(getattr(c, o) for c in counts.values()) for o in _OUTCOMES))


def _nonzero(counts: Counts) -> dict[str, int]:
    return {o: getattr(counts, o) for o in _OUTCOMES if getattr(counts, o)}


# -- conflicts ------------------------------------------------------------------------------


def _list(args: argparse.Namespace, host: PluginHost) -> int:
    conflicts = host.conflicts(args.name)
    if args.json:
        print(json.dumps([asdict(c) for c in conflicts], indent=2, sort_keys=True))
        return EXIT_OK
    if not conflicts:
        print("no open conflicts")
        return EXIT_OK
    print_table(
        ("ID", "ITEM", "FIELD", "LOCAL", "REMOTE"),
        ((c.id, _item(c), c.field, _short(c.local), _short(c.remote)) for c in conflicts),
    )
    return EXIT_OK


def _show(args: argparse.Namespace, host: PluginHost) -> int:
    conflict = host.sync_connector(args.name).conflict(args.id)
    if conflict is None:
        raise PluginError(args.name, "not-found", f"no open conflict {args.id!r}")
    if args.json:
        print(json.dumps(asdict(conflict), indent=2, sort_keys=True))
        return EXIT_OK
    print(f"conflict {conflict.id} on {_item(conflict)}, field {conflict.field}")
    print(f"  detected {conflict.detected_at or '-'}")
    for side in ("base", "local", "remote"):
        print(f"  {side:<6} {json.dumps(getattr(conflict, side), ensure_ascii=False)}")
    print(f"resolve with: corral conflicts {args.name} resolve {conflict.id} --take local|remote")
    return EXIT_OK


def _resolve(args: argparse.Namespace, host: PluginHost) -> int:
    if args.value is not None:
        value = json_option("--value", args.value)
        result = host.resolve(args.name, args.id, take="value", value=value)
    else:
        result = host.resolve(args.name, args.id, take=args.take)
    where = [w for w, done in (("the remote", result.pushed), ("the task", result.pulled)) if done]
    wrote = f" (written to {' and '.join(where)})" if where else ""
    print(f"resolved {result.resolved}: {result.field} = {_short(result.value)}{wrote}")
    return EXIT_OK


def _item(conflict: Conflict) -> str:
    return " / ".join(x for x in (conflict.external_key, f"task {conflict.task_id}") if x)


def _short(value: Any, width: int = 40) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"
