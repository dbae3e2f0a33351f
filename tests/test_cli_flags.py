"""`--debug`, `-v` and `-q`: accepted at every level of the command tree, and the log lines
they let through (a plugin's at its configured level, Corral's own)."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from corral._cli_logging import verbosity
from corral.cli import build_parser, main
from test_cli import corral_cli

HOSTAPI_GRANTS = ["network.http.outbound", "config.read", "task.read_write", "kv"]


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _parsers(child)


def test_every_parser_in_the_tree_takes_the_global_flags() -> None:
    parsers = list(_parsers(build_parser()))
    assert len(parsers) > 20  # the walk reaches the nested commands
    for parser in parsers:
        for flag in ("--debug", "-v", "--verbose", "-q", "--quiet"):
            assert flag in parser._option_string_actions, (parser.prog, flag)


@pytest.mark.parametrize(
    ("argv", "debug", "steps"),
    [
        (["plugins", "list"], False, 0),
        (["--debug", "plugins", "list"], True, 0),
        (["plugins", "list", "--debug"], True, 0),
        (["plugins", "--debug", "list"], True, 0),
        (["-v", "conflicts", "x", "list", "-vv"], False, 3),
        (["-v", "tasks", "--quiet", "list", "-qq"], False, -2),
        (["events", "list", "--verbose", "-q", "-v"], False, 1),
    ],
)
def test_flags_before_or_after_any_subcommand(argv: list[str], debug: bool, steps: int) -> None:
    args = build_parser().parse_args(argv)
    assert (args.debug, verbosity(args)) == (debug, steps)


def test_debug_after_the_subcommand_shows_the_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "corral.yaml"
    bad.write_text("plugins:\n  hello:\n    grant: [everything]\n")
    done = corral_cli("plugins", "list", "--config", str(bad), "--debug")
    assert done.returncode == 2 and "Traceback" in done.stderr


@pytest.fixture
def hostapi_config(
    tmp_path: Path, plugin_dir: Callable[..., Path], compiled_cache_dir: Path
) -> Callable[..., Path]:
    plugins = plugin_dir("hostapi")

    def write(**settings: object) -> Path:
        path = tmp_path / "corral.yaml"
        hostapi = {"grant": HOSTAPI_GRANTS, **settings}
        path.write_text(
            yaml.safe_dump(
                {
                    "plugin_dirs": [str(plugins)],
                    "data_dir": "data",
                    "cache_dir": str(compiled_cache_dir),
                    "plugins": {"hostapi": hostapi},
                }
            )
        )
        return path

    return write


def _plugin_lines_shown(caplog: pytest.LogCaptureFixture, config: Path, *flags: str) -> list[str]:
    """The levels at which hostapi's log lines came through, logging one at each level."""
    shown = []
    for level in ("trace", "debug", "info", "warn", "error"):
        caplog.clear()
        payload = json.dumps({"level": level, "message": f"at {level}"})
        argv = ["call", "hostapi", "log", "--input", payload, "--config", str(config)]
        assert main([*argv, *flags]) == 0
        if any(r.name == "corral.plugin.hostapi" for r in caplog.records):
            shown.append(level)
    return shown


def test_plugin_lines_at_info_by_default_moved_by_v_and_q(
    hostapi_config: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    config = hostapi_config()
    assert _plugin_lines_shown(caplog, config) == ["info", "warn", "error"]
    assert _plugin_lines_shown(caplog, config, "-v") == ["debug", "info", "warn", "error"]
    assert _plugin_lines_shown(caplog, config, "-vv") == ["trace", "debug", "info", "warn", "error"]
    assert _plugin_lines_shown(caplog, config, "-q") == ["warn", "error"]
    assert _plugin_lines_shown(caplog, config, "--debug") == ["debug", "info", "warn", "error"]
    # The command leaves the application's logging as it found it.
    assert logging.getLogger("corral.plugin").level == logging.NOTSET
    assert logging.getLogger("corral.plugin.hostapi").level == logging.NOTSET


def test_plugin_lines_at_the_configured_level(
    hostapi_config: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    config = hostapi_config(log={"level": "debug"})
    assert _plugin_lines_shown(caplog, config) == ["debug", "info", "warn", "error"]
    assert _plugin_lines_shown(caplog, config, "-q") == ["info", "warn", "error"]
    # The configured level filters first: -v shows nothing below it.
    config = hostapi_config(log={"level": "warn"})
    assert _plugin_lines_shown(caplog, config, "-v") == ["warn", "error"]


def test_plugin_log_lines_reach_stderr_without_debug(hostapi_config: Callable[..., Path]) -> None:
    config = hostapi_config()
    payload = json.dumps({"level": "info", "message": "hello from the sandbox"})
    done = corral_cli("call", "hostapi", "log", "--input", payload, "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert done.stderr == "INFO corral.plugin.hostapi: hello from the sandbox\n"
    done = corral_cli("call", "hostapi", "log", "--input", payload, "--config", str(config), "-q")
    assert done.returncode == 0 and done.stderr == ""
    # -vv reaches Corral's own info lines too.
    done = corral_cli("-vv", "call", "hostapi", "log", "--input", payload, "--config", str(config))
    assert "INFO corral.registry: plugin hostapi 0.1.0 loaded" in done.stderr
