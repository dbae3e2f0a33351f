"""The command line's global flags (``--debug``, ``-v``, ``-q``) and the logging they set up.

The flags are added to every parser of the tree, so they go before or after any subcommand
(``corral --debug plugins list`` and ``corral plugins list --debug`` mean the same). Two kinds
of log lines reach stderr:

- a plugin's own (``corral.plugin.<name>``): from its ``plugins.<name>.log.level`` in
  corral.yaml, or from ``info`` when that is unset;
- Corral's (every other ``corral.*`` logger): errors only, since a command reports its own
  failures (``corral serve``: ``info``, one line per state change).

Each ``-v`` lowers both thresholds one level (to ``debug``, then ``trace``), each ``-q`` raises
them one; ``--debug`` lowers them to ``debug`` at least and adds tracebacks. A plugin's
configured level also filters its lines before they reach Python logging, so ``-v`` shows
nothing below it.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from .capabilities.log import LOG_LEVELS, plugin_logger

if TYPE_CHECKING:
    from .config import HostConfig

__all__ = ["add_global_flags", "apply_plugin_levels", "logging_configured", "verbosity"]

TRACE = LOG_LEVELS["trace"]
# The thresholds -v and -q step through, lowest first.
_STEPS = (TRACE, logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)
_PLUGIN_DEFAULT = logging.INFO
_PLUGIN_PARENT = "corral.plugin"  # the parent of every `plugin_logger`


def add_global_flags(parser: argparse.ArgumentParser, depth: int = 0) -> None:
    """Add the global flags to `parser` and to every subcommand parser below it.

    Each level counts its own ``-v``/``-q`` (argparse parses a subcommand into a namespace of
    its own and copies it over the parent's), so `verbosity` adds the levels up; a level where
    a flag is not given leaves no attribute, so it cannot reset what another level set.
    """
    flags = parser.add_argument_group("output")
    flags.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS,
        help="show tracebacks and debug logs",
    )  # fmt: skip
    flags.add_argument(
        "-v", "--verbose", action="count", dest=f"verbose_{depth}", default=argparse.SUPPRESS,
        help="show more log lines (repeatable: debug, then trace)",
    )  # fmt: skip
    flags.add_argument(
        "-q", "--quiet", action="count", dest=f"quiet_{depth}", default=argparse.SUPPRESS,
        help="show fewer log lines (repeatable)",
    )  # fmt: skip
    if depth == 0:
        parser.set_defaults(debug=False)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                add_global_flags(child, depth + 1)


def verbosity(args: argparse.Namespace) -> int:
    """How many levels below the default to log: the ``-v`` count minus the ``-q`` count."""
    counts = vars(args)
    more = sum(n for key, n in counts.items() if key.startswith("verbose_"))
    fewer = sum(n for key, n in counts.items() if key.startswith("quiet_"))
    return int(more - fewer)


def _shifted(level: int, steps: int, debug: bool) -> int:
    index = min(range(len(_STEPS)), key=lambda i: abs(_STEPS[i] - level))
    shifted = _STEPS[max(0, min(len(_STEPS) - 1, index - steps))]
    return min(shifted, logging.DEBUG) if debug else shifted


@contextmanager
def logging_configured(args: argparse.Namespace, *, serving: bool = False) -> Iterator[None]:
    """Send log lines to stderr at the thresholds `args`' flags ask for (module docstring).

    On exit every plugin logger gets its level back, so a command run in-process (``main``
    in a test, say) leaves the application's logging as it found it.
    """
    logging.addLevelName(TRACE, "TRACE")
    steps = verbosity(args)
    logging.basicConfig(
        level=_shifted(logging.INFO if serving else logging.ERROR, steps, args.debug),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        if serving
        else "%(levelname)s %(name)s: %(message)s",
    )
    saved = _plugin_logger_levels()
    # The root logger's level applies to Corral's own loggers; the plugins' parent has its own.
    logging.getLogger(_PLUGIN_PARENT).setLevel(_shifted(_PLUGIN_DEFAULT, steps, args.debug))
    try:
        yield
    finally:
        for name in _plugin_logger_levels():
            logging.getLogger(name).setLevel(saved.get(name, logging.NOTSET))


def _plugin_logger_levels() -> dict[str, int]:
    loggers = logging.root.manager.loggerDict
    return {
        name: logger.level
        for name, logger in loggers.items()
        if isinstance(logger, logging.Logger)
        and (name == _PLUGIN_PARENT or name.startswith(_PLUGIN_PARENT + "."))
    }


def apply_plugin_levels(config: HostConfig, args: argparse.Namespace) -> None:
    """Give each plugin with a ``log.level`` in `config` that level, moved by the flags."""
    steps = verbosity(args)
    for name, settings in config.plugins.items():
        level = (settings.capability_options().get("log") or {}).get("level")
        if isinstance(level, str) and level in LOG_LEVELS:
            plugin_logger(name).setLevel(_shifted(LOG_LEVELS[level], steps, args.debug))
