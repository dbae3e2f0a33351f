"""Declared commands: the manifest's `commands`, the host's input check, the listings, and
`corral build` filling the declaration from `@plugin.command`."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from corral import (
    BuildError,
    Bundle,
    InvalidCommandInput,
    ManifestError,
    PluginError,
    PluginHost,
    ProtocolError,
    SignatureError,
)
from corral._declared_commands import declared_commands
from corral._manifest_commands import (
    GENERATED_END,
    with_declared_commands,
    without_generated_commands,
)
from corral.manifest import parse_manifest
from corral.signing import SigningKey, TrustedKey, TrustPolicy, sign_bundle

ROOT = Path(__file__).resolve().parent.parent
HELLO_GRANT = {"hello": {"grant": ["config.read"]}}


def declare(bundle: Path, commands: dict[str, Any]) -> None:
    """Replace the commands a bundle's manifest declares (the checksum covers only the wasm)."""
    path = bundle / "manifest.yaml"
    data = yaml.safe_load(path.read_text())
    data["commands"] = commands
    path.write_text(yaml.safe_dump(data))


# -- the declaration a real build writes ------------------------------------------------------


def test_build_declares_the_commands_of_app_py(bundles: dict[str, Bundle]) -> None:
    commands = bundles["hello"].manifest.commands
    assert list(commands) == ["echo", "greet", "repeat", "config"]
    assert commands["echo"].description == "Return the input unchanged."
    assert commands["echo"].input_schema == {}
    assert commands["greet"].output_schema == {
        "type": "object",
        "properties": {"message": {"type": "string"}},
        "required": ["message"],
    }
    assert commands["repeat"].input_schema == {
        "type": "object",
        "properties": {"text": {"type": "string"}, "times": {"type": "integer"}},
        "required": ["text"],
        "additionalProperties": False,
    }
    # jira-sync declares its protocol commands by hand: kept as written
    jira = bundles["jira-sync"].manifest.commands
    assert list(jira) == ["sync", "status", "conflicts", "resolve"]
    assert jira["resolve"].input_schema["required"] == ["id", "take"]


def test_a_built_manifest_with_commands_signs_and_verifies(
    tmp_path: Path, bundles: dict[str, Bundle]
) -> None:
    bundle_dir = shutil.copytree(bundles["hello"].directory, tmp_path / "hello")
    key = SigningKey.generate()
    sign_bundle(Bundle.open(bundle_dir), key)
    trust = TrustPolicy(keys=(TrustedKey("author", key.public_key),), require_signatures=True)
    signer = trust.signer(Bundle.open(bundle_dir))
    assert signer is not None and signer.name == "author"
    # the declarations are part of the signed manifest
    manifest = bundle_dir / "manifest.yaml"
    manifest.write_text(manifest.read_text().replace("Return the input", "Return the output"))
    with pytest.raises(SignatureError, match="manifest"):
        trust.signer(Bundle.open(bundle_dir))


def test_the_sdk_builds_and_returns_dataclasses(make_host: Callable[..., PluginHost]) -> None:
    host = make_host("hello", plugins=HELLO_GRANT)
    assert host.call("hello", "repeat", {"text": "hi"}, check_output=True) == {
        "texts": ["hi", "hi"]
    }
    assert host.call("hello", "repeat", {"text": "o", "times": 3}) == {"texts": ["o"] * 3}


# -- the host's input check -------------------------------------------------------------------


def test_bad_input_is_refused_naming_the_command_and_field(
    make_host: Callable[..., PluginHost],
) -> None:
    host = make_host("hello", plugins=HELLO_GRANT)
    with pytest.raises(InvalidCommandInput) as missing:
        host.call("hello", "repeat", {"times": 3})
    assert str(missing.value) == (
        "plugin 'hello': repeat: input.text: 'text' is a required property"
    )
    assert isinstance(missing.value, PluginError) and missing.value.kind == "invalid-input"
    with pytest.raises(InvalidCommandInput, match=r"repeat: input.times: '3' is not of type"):
        host.call("hello", "repeat", {"text": "x", "times": "3"})
    with pytest.raises(InvalidCommandInput, match=r"repeat: input: Additional properties"):
        host.call("hello", "repeat", {"text": "x", "loud": True})
    with pytest.raises(InvalidCommandInput, match=r"greet: input.name: 5 is not of type"):
        host.call("hello", "greet", {"name": 5})
    assert host.call("hello", "greet", None) == {"message": "Hello, world!"}


def test_nested_fields_are_named_and_the_plugin_is_not_entered(
    tmp_path: Path, make_host: Callable[..., PluginHost]
) -> None:
    host = make_host("misbehave", "hello", plugins=HELLO_GRANT)
    host.close()
    bundle = tmp_path / "plugins" / "misbehave"
    schema = {
        "type": "object",
        "required": ["items"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/$defs/item"}},
        },
        "$defs": {
            "item": {
                "type": "object",
                "required": ["id"],
                "properties": {"id": {"type": "integer"}},
            }
        },
    }
    # `state` counts the calls that reach the plugin's instance
    declare(bundle, {"state": {"description": "count", "input_schema": schema}})
    host = make_host(plugins=HELLO_GRANT)
    assert host.call("misbehave", "state", {"items": [{"id": 1}]}) == 1
    with pytest.raises(InvalidCommandInput, match=r"state: input.items\[1\].id: 'x' is not of"):
        host.call("misbehave", "state", {"items": [{"id": 1}, {"id": "x"}]})
    with pytest.raises(
        InvalidCommandInput, match=r"state: input.items\[0\].id: 'id' is a required"
    ):
        host.call("misbehave", "state", {"items": [{}]})
    assert host.call("misbehave", "state", {"items": []}) == 2
    # undeclared commands still work, unchecked
    assert host.call("misbehave", "count", {"n": 3}) is not None
    assert host.call("hello", "echo", {"anything": [1]}) == {"anything": [1]}


def test_output_is_checked_only_when_asked(
    tmp_path: Path, make_host: Callable[..., PluginHost]
) -> None:
    make_host("hello").close()
    declare(
        tmp_path / "plugins" / "hello",
        {"echo": {"output_schema": {"type": "object", "required": ["ok"]}}},
    )
    host = make_host(plugins=HELLO_GRANT)
    assert host.call("hello", "echo", {"no": 1}) == {"no": 1}
    with pytest.raises(ProtocolError, match=r"plugin 'hello': echo: output.ok: 'ok' is a required"):
        host.call("hello", "echo", {"no": 1}, check_output=True)
    assert host.call("hello", "echo", {"ok": 1}, check_output=True) == {"ok": 1}


def test_a_huge_wrong_value_gives_a_short_line(make_host: Callable[..., PluginHost]) -> None:
    host = make_host("hello", plugins=HELLO_GRANT)
    with pytest.raises(InvalidCommandInput) as info:
        host.call("hello", "repeat", {"text": ["a\nb" * 10_000]})
    assert len(str(info.value)) < 400 and "\n" not in str(info.value)


# -- the manifest's commands --------------------------------------------------------------------

MANIFEST = """\
schema_version: "1.0"
plugin: {name: p, version: 1.0.0}
security: {checksum: "sha256:%s"}
""" % ("0" * 64)


def manifest_with(commands: Any) -> str:
    return MANIFEST + yaml.safe_dump({"commands": commands})


@pytest.mark.parametrize(
    ("commands", "error"),
    [
        ({"go": {"input_schema": {"$ref": "https://example.com/s.json"}}},
         "commands.go.input_schema.$ref: remote references are not allowed"),
        ({"go": {"output_schema": {"$ref": "file:///etc/passwd"}}},
         "commands.go.output_schema.$ref: remote references are not allowed"),
        ({"go": {"input_schema": {"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}}},
         "refers back to itself"),
        ({"go": {"input_schema": {"enum": list(range(10_001))}}}, "has more than 10000 values"),
        ({"go": {"input_schema": {"type": "strin"}}}, "is not a valid JSON Schema"),
        ({"go": {"input_schema": {"properties": {"a": {"$anchor": "x"}}}}}, "is not supported"),
        ({"no good": {}}, 'commands.no good: is not a command name'),
        ({"go": {"descripton": "typo"}}, "commands.go.descripton: unknown key"),
    ],
)  # fmt: skip
def test_hostile_or_broken_declarations_are_refused(commands: Any, error: str) -> None:
    with pytest.raises(ManifestError, match=error.replace("$", r"\$").replace(".", r"\.")):
        parse_manifest(manifest_with(commands).encode(), Path("manifest.yaml"))


# -- listings -----------------------------------------------------------------------------------


def test_inspect_and_the_plugin_list_show_the_commands(
    make_host: Callable[..., PluginHost], bundles: dict[str, Bundle]
) -> None:
    host = make_host("hello", plugins=HELLO_GRANT)
    described = host.describe(bundles["hello"].directory)["commands"]
    assert described["greet"]["description"].startswith("Greet `name`")
    assert described["repeat"]["input_schema"]["required"] == ["text"]
    listed = host.plugin("hello").as_json()["commands"]
    assert listed == described


def test_the_cli_lists_commands_and_refuses_bad_input(
    tmp_path: Path, plugin_dir: Callable[..., Path], compiled_cache_dir: Path
) -> None:
    plugins = plugin_dir("hello")
    config = tmp_path / "corral.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "plugin_dirs": [str(plugins)],
                "data_dir": str(tmp_path / "data"),
                "cache_dir": str(compiled_cache_dir),
                "plugins": HELLO_GRANT,
            }
        )
    )
    inspect = corral("plugins", "inspect", str(plugins / "hello"), "--config", str(config))
    assert inspect.returncode == 0, inspect.stderr
    listing = inspect.stdout.split("commands:\n", 1)[1].splitlines()[:4]
    assert listing == [
        "  - echo: Return the input unchanged.",
        '  - greet: Greet `name` (default "world") with the operator\'s greeting '
        '(default "Hello").',
        "  - repeat: Say `text` `times` times (twice by default).",
        "  - config: The plugin's config, as the operator set it.",
    ]
    called = corral("call", "hello", "repeat", "--input", "{}", "--config", str(config))
    assert called.returncode == 1
    assert called.stderr == (
        "corral: plugin 'hello': repeat: input.text: 'text' is a required property\n"
    )


def corral(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "corral.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# -- deriving declarations from source (no build) -------------------------------------------------


def app(tmp_path: Path, source: str, **siblings: str) -> Path:
    for name, text in siblings.items():
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(text))
    path = tmp_path / "app.py"
    path.write_text("from corral_sdk import Plugin\nplugin = Plugin()\n" + textwrap.dedent(source))
    return path


def test_hints_become_schemas(tmp_path: Path) -> None:
    path = app(
        tmp_path,
        '''
        import typing
        from typing import Literal, NotRequired, Optional, TypedDict
        from models import Point

        class Base(TypedDict):
            id: int

        class Query(Base, total=False):
            kind: Literal["a", "b"]
            tags: list[str]
            limit: "Optional[int]"
            where: Point

        @plugin.command("find")
        def find(args: Query) -> dict[str, float | None]:
            """Find things.

            More words."""

        @plugin.command("raw", input_schema=SCHEMA, output_schema={"type": "string"})
        def raw(args: int) -> typing.Any: ...

        SCHEMA = {"type": "integer", "minimum": 0}

        @plugin.command("bare")
        def bare(args): ...
        ''',
        models="""
        from dataclasses import dataclass, field
        @dataclass
        class Point:
            x: float
            y: float = 0.0
            labels: list[str] = field(default_factory=list)
        """,
    )
    found = declared_commands(path)
    assert found["find"]["description"] == "Find things.\n\nMore words."
    assert found["find"]["input_schema"] == {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "kind": {"enum": ["a", "b"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "limit": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "where": {
                "type": "object",
                "properties": {
                    "x": {"type": "number"},
                    "y": {"type": "number"},
                    "labels": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["x"],
                "additionalProperties": False,
            },
        },
        "required": ["id"],
    }
    assert found["find"]["output_schema"] == {
        "type": "object",
        "additionalProperties": {"anyOf": [{"type": "number"}, {"type": "null"}]},
    }
    assert found["raw"] == {
        "description": "",
        "input_schema": {"type": "integer", "minimum": 0},
        "output_schema": {"type": "string"},
    }
    assert found["bare"]["input_schema"] == {} == found["bare"]["output_schema"]


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("@plugin.command(NAME)\ndef f(args): ...\n",
         r"app.py:4: the command name must be a string literal"),
        ("@plugin.command('f', input_schema=make())\ndef f(args): ...\n",
         r"app.py:4: command 'f': 'make\(\)' is not a literal"),
        ("@plugin.command('f')\ndef f(args: set[int] | Thing) -> None: ...\n",
         r"app.py:5: command 'f': cannot turn the type hint 'Thing'"),
        ("class T(TypedDict):\n    next: 'T'\n@plugin.command('f')\ndef f(args: T): ...\n",
         r"T refers to itself"),
        ("@plugin.command('f')\ndef f(args): ...\n@plugin.command('f')\ndef g(args): ...\n",
         r"command 'f' is registered twice"),
        ("def broken(:\n", r"app.py:4: invalid Python"),
    ],
)  # fmt: skip
def test_what_cannot_be_read_is_refused_with_the_line(
    tmp_path: Path, source: str, error: str
) -> None:
    with pytest.raises(BuildError, match=error):
        declared_commands(app(tmp_path, "from typing import TypedDict\n" + source))


def test_inherited_fields_are_included_and_plain_classes_refused(tmp_path: Path) -> None:
    path = app(
        tmp_path,
        """
        from dataclasses import dataclass
        from typing import TypedDict

        class Plain:
            a: int

        class NotATypedDict(Plain):
            b: int

        @dataclass
        class Base:
            a: int

        @dataclass
        class Child(Base):
            b: str = ""

        @plugin.command("child")
        def child(args: Child): ...

        @plugin.command("plain")
        def plain(args: NotATypedDict): ...
        """,
    )
    with pytest.raises(BuildError, match="NotATypedDict is neither a TypedDict nor a dataclass"):
        declared_commands(path)
    path.write_text(path.read_text().replace("def plain(args: NotATypedDict)", "def plain(args)"))
    assert declared_commands(path)["child"]["input_schema"] == {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "string"}},
        "required": ["a"],
        "additionalProperties": False,
    }


def test_other_decorators_named_command_are_not_plugin_commands(tmp_path: Path) -> None:
    path = app(tmp_path, "import click\n@click.command('x')\ndef x(): ...\n")
    assert declared_commands(path) == {}


def test_hand_written_declarations_win_and_rebuilds_replace_generated_ones(tmp_path: Path) -> None:
    written = textwrap.dedent(
        """\
        schema_version: "1.0"
        plugin: {name: p, version: 1.0.0}
        commands:
          go:  # by hand
            description: mine
        security:
          checksum: ""
        """
    )
    manifest = parse_manifest(
        written.replace('""', '"sha256:' + "0" * 64 + '"').encode(), Path("m")
    )
    derived = {
        "go": {"description": "theirs", "input_schema": {}, "output_schema": {}},
        "stop": {"description": "halt", "input_schema": {"type": "null"}, "output_schema": {}},
    }
    built = with_declared_commands(written, manifest.commands, derived, Path("m"))
    data = yaml.safe_load(built)
    assert data["commands"] == {"go": {"description": "mine"}, "stop": derived["stop"]}
    assert "  go:  # by hand\n" in built and data["security"] == {"checksum": ""}
    # a build in place reads the author's text back, whatever the last build added
    assert without_generated_commands(built, Path("m")) == written
    # an entry the author adds after the generated ones is theirs, and stays
    added_later = built.replace("security:", "  later: {description: mine too}\nsecurity:")
    assert "later:" in without_generated_commands(added_later, Path("m"))
    broken = built.replace(GENERATED_END + "\n", "")
    with pytest.raises(BuildError, match=r"m: the commands generated by the last build have lost"):
        without_generated_commands(broken, Path("m"))
    with pytest.raises(BuildError, match=r"m: commands.go: declared here, but app.py registers no"):
        with_declared_commands(written, manifest.commands, {"stop": derived["stop"]}, Path("m"))
    added = with_declared_commands(MANIFEST, {}, derived, Path("m"))
    assert yaml.safe_load(added)["commands"] == derived
    assert without_generated_commands(added, Path("m")) == MANIFEST
    with pytest.raises(BuildError, match="block mapping"):
        with_declared_commands(
            MANIFEST + "commands: {go: {}}\n", manifest.commands, derived, Path("m")
        )
