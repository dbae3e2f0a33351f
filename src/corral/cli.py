"""The `corral` command line.

Exit codes: 0 ok, 1 plugin or verification error, 2 usage or config error (also a plugin that
failed to load for its config or grants), 3 trap (timeout, memory, stack, fuel), 130 Ctrl-C.
Errors are one line on stderr; `--debug` adds the traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import __version__
from ._errors import (
    ConfigError,
    CorralError,
    PermissionDenied,
    PluginTrap,
    PluginUnavailable,
    describe_failure,
)
from ._exit import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_TRAP, EXIT_USAGE, UsageError
from .bundle import Bundle
from .config import HostConfig, load_host_config
from .host import PluginHost
from .host_services import HostServices

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


def _host_config(args: argparse.Namespace) -> HostConfig:
    """corral.yaml if given (or present), with --plugins-dir adding directories."""
    path: Path | None = args.config
    if path is None and DEFAULT_CONFIG.is_file():
        path = DEFAULT_CONFIG
    config = load_host_config(path) if path is not None else HostConfig().resolved(Path.cwd())
    extra = [Path(d).absolute() for d in args.plugins_dir or []]
    if extra:
        config = config.model_copy(update={"plugin_dirs": [*config.plugin_dirs, *extra]})
    return config


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


# -- commands -------------------------------------------------------------------------------


def cmd_plugins_list(args: argparse.Namespace) -> int:
    with PluginHost(config=_host_config(args)) as host:
        infos = host.load()
    if args.json:
        _print_json([i.as_json() for i in infos])
    elif not infos:
        print("no plugins found")
    else:
        width = max(len(i.name) for i in infos)
        for info in infos:
            line = f"{info.name:<{width}}  {info.state:<8}  {info.version or '-'}"
            print(line + (f"  {info.reason}" if info.reason else ""))
    return EXIT_OK if all(i.state != "failed" for i in infos) else EXIT_FAILED


def cmd_plugins_verify(args: argparse.Namespace) -> int:
    trust = _host_config(args).trust
    bundle = Bundle.open(args.bundle)
    signer = trust.policy(bundle.directory.absolute().parent, trust.keyring()).signer(bundle)
    signed = "unsigned" if signer is None else f"signed by {signer}"
    print(
        f"{bundle.name} {bundle.manifest.plugin.version}: {bundle.wasm_path.name} sha256 ok; "
        + signed
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
        elif isinstance(value, list):
            print(f"{key}:")
            for item in value:
                print(f"  - {item}")
        elif isinstance(value, dict):
            print(f"{key}: " + ", ".join(f"{k}={v}" for k, v in value.items()))
        else:
            print(f"{key}: {value}")
    return EXIT_OK


def cmd_call(args: argparse.Namespace) -> int:
    try:
        payload = json.loads(args.input)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--input is not JSON: {exc.msg} at position {exc.pos}") from None
    with PluginHost(config=_host_config(args)) as host:
        host.load()
        result = host.call(args.name, args.command, payload)
    _print_json(result)
    return EXIT_OK


def cmd_build(args: argparse.Namespace) -> int:
    from .build import build_plugin, bundle_component

    if args.wasm is not None and args.out is not None:
        raise UsageError("--wasm bundles the component into DIR itself; drop --out")
    if args.wasm is not None:
        bundle = bundle_component(args.wasm, args.source)
    else:
        bundle = build_plugin(args.source, args.out)
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
    with PluginHost(config=_host_config(args)) as host:
        host.load()
        handler: Callable[[argparse.Namespace, PluginHost], int] = args.sync_handler
        return handler(args, host)


def cmd_serve(args: argparse.Namespace) -> int:
    from .serve import serve

    if not args.debug:  # the server logs one line per state change
        logging.getLogger("corral").setLevel(logging.INFO)
    config: Path = args.config if args.config is not None else DEFAULT_CONFIG
    if not config.is_file():
        raise UsageError(f"{config}: no such config file (give one with --config)")
    serve(config, host=args.host, port=args.port)
    return EXIT_OK


def cmd_new(args: argparse.Namespace) -> int:
    from .scaffold import new_plugin

    directory = new_plugin(args.name, args.dir or Path(args.name), args.lang)
    print(f"created {directory}: edit app.py, run its tests with pytest, then `corral build`")
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
    services = HostServices(_host_config(args).data_dir)
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

    queue = EventQueue.in_data_dir(_host_config(args).data_dir)
    try:
        handler: Callable[[argparse.Namespace, Any], int] = args.events_handler
        return handler(args, queue)
    finally:
        queue.close()


# -- parser ---------------------------------------------------------------------------------


def _host_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, help="corral.yaml (default: ./corral.yaml if present)"
    )
    parser.add_argument(
        "--plugins-dir", action="append", metavar="DIR", help="also search DIR (repeatable)"
    )


def build_parser() -> argparse.ArgumentParser:
    from .serve._events_cli import add_events_parser
    from .sync.cli import add_sync_parsers
    from .tasks.cli import add_tasks_parser

    parser = argparse.ArgumentParser(prog="corral", description="WebAssembly plugin host")
    parser.add_argument("--version", action="version", version=f"corral {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    commands = parser.add_subparsers(dest="command", required=True)

    plugins = commands.add_parser("plugins", help="inspect plugin bundles")
    plugin_commands = plugins.add_subparsers(dest="plugins_command", required=True)
    listing = plugin_commands.add_parser("list", help="every discovered bundle and its state")
    _host_options(listing)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_plugins_list)
    verify = plugin_commands.add_parser(
        "verify", help="validate a bundle, its checksum and its signature; show the signer"
    )
    verify.add_argument("bundle", type=Path, metavar="BUNDLE_DIR")
    _host_options(verify)
    verify.set_defaults(func=cmd_plugins_verify)
    inspect = plugin_commands.add_parser("inspect", help="manifest, permissions, imports, exports")
    inspect.add_argument("bundle", type=Path, metavar="BUNDLE_DIR")
    inspect.add_argument("--json", action="store_true")
    _host_options(inspect)
    inspect.set_defaults(func=cmd_plugins_inspect)

    call = commands.add_parser("call", help="call a plugin command and print the JSON result")
    call.add_argument("name")
    call.add_argument("command", metavar="COMMAND")
    call.add_argument("--input", default="null", help="JSON input (default: null)")
    _host_options(call)
    call.set_defaults(func=cmd_call)

    build = commands.add_parser(
        "build", help="build a Python or JavaScript plugin, or bundle a component (--wasm)"
    )
    build.add_argument("source", type=Path, metavar="DIR")
    build.add_argument("--out", type=Path, help="write the bundle here instead of DIR")
    build.add_argument(
        "--wasm", type=Path, metavar="COMPONENT",
        help="bundle this component (from any toolchain) with DIR/manifest.yaml, into DIR",
    )  # fmt: skip
    build.set_defaults(func=cmd_build)

    audit = commands.add_parser("audit", help="read the audit log, rotated files included")
    audit.add_argument("--plugin", metavar="NAME", help="only this plugin's entries")
    audit.add_argument("--since", metavar="T", help="30m, 2h, 1d ago or an ISO 8601 time")
    audit.add_argument("--call", metavar="ID", help="only the entries of one call")
    audit.add_argument("--json", action="store_true", help="one JSON object per line")
    _host_options(audit)
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
    new.add_argument("--lang", choices=["python"], default="python")
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
        _host_options(leaf)
        leaf.set_defaults(func=cmd_tasks)

    add_events_parser(commands)
    for leaf in _subparsers(commands.choices["events"]):
        _host_options(leaf)
        leaf.set_defaults(func=cmd_events)

    _add_jira_emulator_parser(commands)
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
    # Without --debug only errors are logged: a command reports its own failures in one line
    # (or, for `plugins list`, in its table).
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.ERROR,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        if args.command == "serve"
        else "%(levelname)s %(name)s: %(message)s",
    )
    try:
        code: int = args.func(args)
        return code
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


if __name__ == "__main__":
    sys.exit(main())
