"""The `corral` command line.

Exit codes: 0 ok, 1 plugin or verification error, 2 usage or config error (also a plugin that
failed to load for its config or grants), 3 trap (timeout, memory, stack, fuel), 130 Ctrl-C,
141 when stdout's reader went away (as for a process that SIGPIPE ended).
Errors are one line on stderr; `--debug` adds the traceback. `--debug`, `-v` and `-q` go before
or after any subcommand (see `_cli_logging`).
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import __version__
from ._cli_input import json_option
from ._cli_logging import add_global_flags, apply_plugin_levels, logging_configured
from ._cli_output import print_table, silence_stdout
from ._errors import (
    ConfigError,
    CorralError,
    PermissionDenied,
    PluginTrap,
    PluginUnavailable,
    describe_failure,
)
from ._exit import (
    EXIT_BROKEN_PIPE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TRAP,
    EXIT_USAGE,
    UsageError,
)
from ._settings_origin import SettingsOrigin
from .bundle import Bundle
from .config import HostConfig, load_host_config
from .host import PluginHost
from .host_services import HostServices
from .scaffold import LANGUAGES as SCAFFOLD_LANGUAGES

__all__ = ["main"]

DEFAULT_CONFIG = Path("corral.yaml")


def _exit_code(error: CorralError) -> int:
    if isinstance(error, PluginTrap):
        return EXIT_TRAP
    if isinstance(error, ConfigError | UsageError):
        return EXIT_USAGE
    if isinstance(error, PluginUnavailable) and isinstance(
        error.__cause__, ConfigError | PermissionDenied
    ):
        return EXIT_USAGE  # it failed to load for the operator's settings (config, grants)
    return EXIT_FAILED


def _host_config(args: argparse.Namespace, *, creates_data: bool = False) -> HostConfig:
    """corral.yaml if given (or present), with --plugins-dir and --data-dir applied.

    With no config and no --data-dir, a command that `creates_data` (tasks, kv, the audit log)
    says where it put them if it created the data dir (`_announce_data_dir`), rather than leave a
    ``.corral`` behind unannounced.
    """
    path: Path | None = args.config
    if path is None and DEFAULT_CONFIG.is_file():
        path = DEFAULT_CONFIG
    if path is not None:
        config = load_host_config(path)
    else:  # advice names the corral.yaml the operator would write
        config = HostConfig().resolved(Path.cwd()).with_origin(SettingsOrigin(DEFAULT_CONFIG))
    update: dict[str, Any] = {}
    extra = [Path(d).absolute() for d in getattr(args, "plugins_dir", None) or []]
    if extra:
        update["plugin_dirs"] = [*config.plugin_dirs, *extra]
    data_dir: Path | None = getattr(args, "data_dir", None)
    if data_dir is not None:
        update["data_dir"] = data_dir.absolute()
    config = config.model_copy(update=update)
    if creates_data and path is None and data_dir is None and not config.data_dir.exists():
        args.unannounced_data_dir = config.data_dir  # for `main`, once the command is done
    apply_plugin_levels(config, args)
    return config


def _announce_data_dir(args: argparse.Namespace) -> None:
    created: Path | None = getattr(args, "unannounced_data_dir", None)
    if created is not None and created.exists():
        print(
            f"corral: no {DEFAULT_CONFIG} here: keeping tasks, kv and the audit log in new data "
            f"dir {_shown_path(created)} (--config or --data-dir choose another)",
            file=sys.stderr,
        )


def _shown_path(path: Path | None) -> str | None:
    """`path` relative to the working directory when it is below it (shorter), else as is."""
    if path is None:
        return None
    try:
        return str(path.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _check_settings_match(host: PluginHost, strict: bool) -> None:
    """Warn on stderr about ``plugins:`` entries that name no bundle; `strict` refuses them."""
    unmatched = host.unmatched_settings()
    if strict and unmatched:
        more = f" (and {len(unmatched) - 1} more)" if len(unmatched) > 1 else ""
        raise ConfigError(f"{unmatched[0]}{more}; --strict refuses settings for no plugin")
    for message in unmatched:
        print(f"corral: warning: {message}", file=sys.stderr)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


# -- commands -------------------------------------------------------------------------------


def cmd_plugins_list(args: argparse.Namespace) -> int:
    with PluginHost(config=_host_config(args, creates_data=True)) as host:
        infos = host.load()
    if args.json:
        _print_json([i.as_json() for i in infos])
    elif not infos:
        print("no plugins found")
    else:
        print_table(
            ("NAME", "STATE", "VERSION", "DIR", "REASON"),
            ((i.name, i.state, i.version, _shown_path(i.directory), i.reason) for i in infos),
        )
    _check_settings_match(host, args.strict)
    return EXIT_OK if all(i.state != "failed" for i in infos) else EXIT_FAILED


def cmd_plugins_verify(args: argparse.Namespace) -> int:
    config = _host_config(args)
    with PluginHost(config=config) as host:
        bundle = host.verify(args.bundle)
    trust = config.trust
    signer = trust.policy(bundle.directory.absolute().parent, trust.keyring()).signer(bundle)
    signed = "unsigned" if signer is None else f"signed by {signer}"
    print(
        f"{bundle.name} {bundle.manifest.plugin.version}: {bundle.wasm_path.name} sha256 ok, "
        f"a corral:plugin component; {signed}"
    )
    return EXIT_OK


def cmd_plugins_inspect(args: argparse.Namespace) -> int:
    with PluginHost(config=_host_config(args)) as host:
        report = host.describe(args.bundle)
    if args.json:
        _print_json(report)
        return EXIT_OK
    for key, value in report.items():
        if key == "commands":
            print("commands:" + ("" if value else " none declared"))
            for name, spec in value.items():
                summary = spec["description"].strip().partition("\n")[0]
                print(f"  - {name}" + (f": {summary}" if summary else ""))
        elif isinstance(value, list) and value:
            print(f"{key}:")
            for item in value:
                print(f"  - {item}")
        elif key == "exports":  # interface: its functions
            print(f"{key}:")
            for name, functions in value.items():
                print(f"  - {name}" + (f": {', '.join(functions)}" if functions else ""))
        elif isinstance(value, dict):
            shown = {k: v for k, v in value.items() if v is not None}
            print(f"{key}: " + (", ".join(f"{k}={v}" for k, v in shown.items()) or "-"))
        else:
            print(f"{key}: {'none' if value in ([], None, '') else value}")
    return EXIT_OK


def cmd_call(args: argparse.Namespace) -> int:
    payload = json_option("--input", args.input)
    with PluginHost(config=_host_config(args, creates_data=True)) as host:
        host.load()
        _check_settings_match(host, args.strict)
        result = host.call(args.name, args.command, payload)
    _print_json(result)
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from .run import run_plugin

    options: dict[str, Any] = {}
    flags = (
        ("--input", args.input),
        ("--config", args.plugin_config),
        ("--settings", args.settings),
    )
    for flag, text in flags:
        options[flag] = json_option(flag, text)
    for flag in ("--config", "--settings"):
        if not isinstance(options[flag], dict):
            raise UsageError(f"{flag} must be a JSON object")
    report = run_plugin(
        args.source,
        args.command,
        options["--input"],
        grants=args.grant or [],
        config=options["--config"],
        settings=options["--settings"],
        data_dir=args.data_dir,
    )
    if args.json:
        _print_json(report.as_json())
    else:
        if report.error is None:
            _print_json(report.result)
        print(report.render())
    if report.error is None:
        return EXIT_OK
    print(f"corral: {report.error}", file=sys.stderr)
    return _exit_code(report.error)


def cmd_build(args: argparse.Namespace) -> int:
    from .build import build_plugin, bundle_component

    if args.wasm is not None and args.out is not None:
        raise UsageError("--wasm bundles the component into DIR itself; drop --out")
    if args.wasm is not None:
        bundle = bundle_component(args.wasm, args.source)
    else:
        bundle = build_plugin(args.source, args.out, use_cache=args.use_cache)
    print(
        f"built {bundle.wasm_path} ({bundle.wasm_path.stat().st_size} bytes), "
        f"checksum sha256:{bundle.wasm_sha256}"
    )
    return EXIT_OK


def cmd_audit(args: argparse.Namespace) -> int:
    from ._audit import parse_since, read_audit, select

    try:
        since = None if args.since is None else parse_since(args.since)
    except ValueError as exc:
        raise UsageError(f"--since: {exc}") from None
    path = _host_config(args).data_dir / "audit.log"
    if not path.parent.is_dir():
        raise UsageError(
            f"no data dir {_shown_path(path.parent)}, so no audit log; "
            "give the host's --config or --data-dir"
        )
    entries = read_audit(path)
    for entry in select(entries, plugin=args.plugin, since=since, call_id=args.call):
        if args.json:
            print(json.dumps(entry, ensure_ascii=False))
            continue
        head = [entry.get(k) or "-" for k in ("ts", "call_id", "plugin", "event")]
        rest = {k: v for k, v in entry.items() if k not in {"ts", "call_id", "plugin", "event"}}
        print("  ".join(map(str, head)), *(f"{k}={json.dumps(v)}" for k, v in rest.items()))
    return EXIT_OK


def cmd_sync(args: argparse.Namespace) -> int:
    with PluginHost(config=_host_config(args, creates_data=True)) as host:
        host.load()
        handler: Callable[[argparse.Namespace, PluginHost], int] = args.sync_handler
        return handler(args, host)


def cmd_serve(args: argparse.Namespace) -> int:
    from .serve import serve

    config: Path = args.config if args.config is not None else DEFAULT_CONFIG
    if not config.is_file():
        raise UsageError(f"{config}: no such config file (give one with --config)")
    apply_plugin_levels(load_host_config(config), args)
    serve(config, host=args.host, port=args.port)
    return EXIT_OK


def cmd_new(args: argparse.Namespace) -> int:
    from .scaffold import new_plugin

    directory = new_plugin(args.name, args.dir or Path(args.name), args.lang)
    source = SCAFFOLD_LANGUAGES[args.lang]
    print(f"created {directory}: edit {source}, run its tests with pytest, then `corral build`")
    return EXIT_OK


def cmd_keygen(args: argparse.Namespace) -> int:
    from .signing import SigningKey

    public_path = args.out.with_name(args.out.name + ".pub")
    if public_path.exists():  # checked first, so a refusal leaves no private key behind
        raise UsageError(f"{public_path}: already exists; not overwriting a key")
    key = SigningKey.generate()
    key.write(args.out)
    public = key.public_key
    public.write(public_path)
    print(f"wrote {args.out} (private: keep it secret) and {public_path}")
    print(f"key id {public.key_id}")
    print(f"public key {public.text}")
    return EXIT_OK


def cmd_sign(args: argparse.Namespace) -> int:
    from .signing import SigningKey, sign_bundle

    key = SigningKey.read(args.key)
    bundle = Bundle.open(args.bundle)
    signature = sign_bundle(bundle, key)
    print(f"signed {bundle.name} {bundle.manifest.plugin.version} with key {signature.key_id}")
    return EXIT_OK


def cmd_tasks(args: argparse.Namespace) -> int:
    services = HostServices(_host_config(args, creates_data=True).data_dir)
    try:
        handler: Callable[[argparse.Namespace, Any], int] = args.tasks_handler
        return handler(args, services.task_store)
    finally:
        services.close()


def cmd_jira_emulator(args: argparse.Namespace) -> int:
    # Imported here: the web stack loads only for this command.
    from .testing.jira._command import run

    return run(args)


def cmd_events(args: argparse.Namespace) -> int:
    from .serve._queue import EventQueue

    queue = EventQueue.in_data_dir(_host_config(args, creates_data=True).data_dir)
    try:
        handler: Callable[[argparse.Namespace, Any], int] = args.events_handler
        return handler(args, queue)
    finally:
        queue.close()


# -- parser ---------------------------------------------------------------------------------


_STRICT_HELP = "fail (exit 2) when corral.yaml has settings for a plugin no bundle provides"


def _host_options(
    parser: argparse.ArgumentParser, *, plugins_dir: bool = True, data_dir: bool = True
) -> None:
    """The options that say which host a command works on; each only where it applies."""
    parser.add_argument(
        "--config", type=Path, help="corral.yaml (default: ./corral.yaml if present)"
    )
    if plugins_dir:
        parser.add_argument(
            "--plugins-dir", action="append", metavar="DIR", help="also search DIR (repeatable)"
        )
    if data_dir:
        parser.add_argument(
            "--data-dir", type=Path, metavar="DIR",
            help="tasks, kv and the audit log (default: the config's data_dir, else ./.corral)",
        )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    from .serve._events_cli import add_events_parser
    from .sync.cli import add_sync_parsers
    from .tasks.cli import add_tasks_parser

    parser = argparse.ArgumentParser(prog="corral", description="WebAssembly plugin host")
    parser.add_argument("--version", action="version", version=f"corral {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    plugins = commands.add_parser("plugins", help="inspect plugin bundles")
    plugin_commands = plugins.add_subparsers(dest="plugins_command", required=True)
    listing = plugin_commands.add_parser("list", help="every discovered bundle and its state")
    _host_options(listing)
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--strict", action="store_true", help=_STRICT_HELP)
    listing.set_defaults(func=cmd_plugins_list)
    verify = plugin_commands.add_parser(
        "verify", help="validate a bundle, its checksum and its signature; show the signer"
    )
    verify.add_argument("bundle", type=Path, metavar="BUNDLE_DIR")
    _host_options(verify, plugins_dir=False, data_dir=False)
    verify.set_defaults(func=cmd_plugins_verify)
    inspect = plugin_commands.add_parser("inspect", help="manifest, permissions, imports, exports")
    inspect.add_argument("bundle", type=Path, metavar="BUNDLE_DIR")
    inspect.add_argument("--json", action="store_true")
    _host_options(inspect, plugins_dir=False, data_dir=False)
    inspect.set_defaults(func=cmd_plugins_inspect)

    call = commands.add_parser("call", help="call a plugin command and print the JSON result")
    call.add_argument("name")
    call.add_argument("command", metavar="COMMAND")
    call.add_argument("--input", default="null", help="JSON input (default: null)")
    call.add_argument("--strict", action="store_true", help=_STRICT_HELP)
    _host_options(call)
    call.set_defaults(func=cmd_call)

    run = commands.add_parser(
        "run", help="build if stale, call a plugin once, report what it used against its limits"
    )
    run.add_argument("source", type=Path, metavar="DIR", help="a plugin's source dir or bundle")
    run.add_argument("command", metavar="COMMAND")
    run.add_argument("--input", default="null", help="JSON input (default: null)")
    run.add_argument(
        "--grant", action="append", metavar="PERMISSION",
        help="grant the plugin this permission (repeatable; default: none)",
    )  # fmt: skip
    run.add_argument(
        "--config", dest="plugin_config", default="{}", metavar="JSON",
        help="the plugin's config, a JSON object (default: {})",
    )  # fmt: skip
    run.add_argument(
        "--settings", default="{}", metavar="JSON",
        help="operator settings, as under plugins.NAME in corral.yaml, e.g. "
        '\'{"http": {"allow_private_networks": ["127.0.0.0/8"]}}\'',
    )  # fmt: skip
    run.add_argument(
        "--data-dir", type=Path, metavar="DIR",
        help="keep the plugin's data (kv, tasks, audit log) here (default: a new temporary dir)",
    )  # fmt: skip
    run.add_argument("--json", action="store_true", help="result and report as one JSON document")
    run.set_defaults(func=cmd_run)

    build = commands.add_parser(
        "build", help="build a Python or JavaScript plugin, or bundle a component (--wasm)"
    )
    build.add_argument("source", type=Path, metavar="DIR")
    build.add_argument("--out", type=Path, help="write the bundle here instead of DIR")
    build.add_argument(
        "--wasm", type=Path, metavar="COMPONENT",
        help="bundle this component (from any toolchain) with DIR/manifest.yaml, into DIR",
    )  # fmt: skip
    build.add_argument(
        "--no-cache", dest="use_cache", action="store_false",
        help="build even if a component built from the same sources is cached",
    )  # fmt: skip
    build.set_defaults(func=cmd_build)

    audit = commands.add_parser("audit", help="read the audit log, rotated files included")
    audit.add_argument("--plugin", metavar="NAME", help="only this plugin's entries")
    audit.add_argument("--since", metavar="T", help="30m, 2h, 1d ago or an ISO 8601 time")
    audit.add_argument("--call", metavar="ID", help="only the entries of one call")
    audit.add_argument("--json", action="store_true", help="one JSON object per line")
    _host_options(audit, plugins_dir=False)
    audit.set_defaults(func=cmd_audit)

    add_sync_parsers(commands)
    for leaf in [commands.choices["sync"], *_subparsers(commands.choices["conflicts"])]:
        _host_options(leaf)
        leaf.set_defaults(func=cmd_sync)

    serve = commands.add_parser("serve", help="serve plugins over HTTP, reloading on change")
    serve.add_argument(
        "--config", type=Path, help="corral.yaml (default: ./corral.yaml); watched for changes"
    )
    serve.add_argument("--host", help="address to bind (default: serve.host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default: serve.port, 8080)")
    serve.set_defaults(func=cmd_serve)

    new = commands.add_parser("new", help="create a plugin project that builds and tests as is")
    new.add_argument("name", metavar="NAME", help="the plugin's name, as in its manifest")
    new.add_argument("--lang", choices=list(SCAFFOLD_LANGUAGES), default="python")
    new.add_argument("--dir", type=Path, help="create the project here (default: ./NAME)")
    new.set_defaults(func=cmd_new)

    keygen = commands.add_parser("keygen", help="make an Ed25519 key pair for signing bundles")
    keygen.add_argument(
        "--out", type=Path, default=Path("corral-signing.key"), metavar="KEY",
        help="private key file (default: corral-signing.key); the public key goes to KEY.pub",
    )  # fmt: skip
    keygen.set_defaults(func=cmd_keygen)

    sign = commands.add_parser("sign", help="sign a bundle (writes BUNDLE_DIR/signature.json)")
    sign.add_argument("bundle", type=Path, metavar="BUNDLE_DIR")
    sign.add_argument("--key", type=Path, required=True, help="private key from `corral keygen`")
    sign.set_defaults(func=cmd_sign)

    add_tasks_parser(commands)
    for leaf in _subparsers(commands.choices["tasks"]):
        _host_options(leaf, plugins_dir=False)
        leaf.set_defaults(func=cmd_tasks)

    add_events_parser(commands)
    for leaf in _subparsers(commands.choices["events"]):
        _host_options(leaf, plugins_dir=False)
        leaf.set_defaults(func=cmd_events)

    _add_jira_emulator_parser(commands)
    add_global_flags(parser)
    return parser


def _add_jira_emulator_parser(commands: Any) -> None:
    emulator = commands.add_parser(
        "jira-emulator",
        help="serve a local Jira Cloud emulator (for tests and demos)",
        description="Serve a local Jira Cloud (REST API v2 and v3) until Ctrl-C.",
    )
    emulator.add_argument("--host", default="127.0.0.1", help="address to listen on")
    emulator.add_argument("--port", type=int, default=8765, help="port (0: any free port)")
    emulator.add_argument("--issues", type=int, default=0, metavar="N", help="seed N issues")
    emulator.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the issues")
    emulator.add_argument("--project", default="DEMO", metavar="KEY", help="project key")
    emulator.add_argument(
        "--user",
        action="append",
        metavar="EMAIL:TOKEN[:TZ]",
        help="a user who may call the API (repeatable; default: two example users)",
    )
    emulator.add_argument(
        "--webhook", action="append", metavar="URL", help="POST issue events to URL (repeatable)"
    )
    emulator.add_argument("--webhook-secret", metavar="S", help="sign webhooks (HMAC-SHA256)")
    emulator.add_argument(
        "--faults", default="", metavar="SPEC", help='faults to inject, e.g. "429:0.1,latency:50ms"'
    )
    emulator.add_argument("--state", metavar="FILE", help="keep issues in this SQLite file")
    emulator.set_defaults(func=cmd_jira_emulator)


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found: list[argparse.ArgumentParser] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.extend(action.choices.values())
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with logging_configured(args, serving=args.command == "serve"):
            code: int = args.func(args)
            sys.stdout.flush()  # here, so a reader that went away is noticed below
        return code
    except BrokenPipeError:  # stdout's reader stopped reading (`corral tasks list | head`)
        silence_stdout()
        return EXIT_BROKEN_PIPE
    except CorralError as error:
        if args.debug:
            traceback.print_exc()
        print(f"corral: {error}", file=sys.stderr)
        return _exit_code(error)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as error:  # a bug or an unforeseen input: still one line without --debug
        if args.debug:
            traceback.print_exc()
        print(f"corral: {describe_failure(error)} (--debug shows the traceback)", file=sys.stderr)
        return EXIT_FAILED
    finally:
        _announce_data_dir(args)


if __name__ == "__main__":
    sys.exit(main())
