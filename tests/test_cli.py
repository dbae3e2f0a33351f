"""The `corral` command in real subprocesses: output, one-line errors, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import wasmtime
import yaml

import corral


def corral_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "corral.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )


@pytest.fixture
def config_file(tmp_path: Path, plugin_dir: Callable[..., Path], compiled_cache_dir: Path) -> Path:
    plugins = plugin_dir("hello", "misbehave")
    path = tmp_path / "corral.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "plugin_dirs": [str(plugins)],
                "data_dir": "data",
                "cache_dir": str(compiled_cache_dir),
                "plugins": {
                    "hello": {"grant": ["config.read"], "config": {"greeting": "Hi"}},
                    "misbehave": {"limits": {"execution_timeout": "200ms"}},
                },
            }
        )
    )
    return path


def test_version() -> None:
    done = corral_cli("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"corral {corral.__version__}"


def test_plugins_list_text_and_json(config_file: Path) -> None:
    done = corral_cli("plugins", "list", "--config", str(config_file))
    assert done.returncode == 0, done.stderr
    assert "hello" in done.stdout and "loaded" in done.stdout
    done = corral_cli("plugins", "list", "--config", str(config_file), "--json")
    listed = {p["name"]: p for p in json.loads(done.stdout)}
    assert listed["hello"]["state"] == "loaded"
    assert listed["hello"]["permissions"] == ["config.read"]


def test_plugins_list_reports_failures_with_exit_1(
    tmp_path: Path, plugin_dir: Callable[..., Path]
) -> None:
    plugins = plugin_dir("hello")  # config.read not granted
    done = corral_cli("plugins", "list", "--plugins-dir", str(plugins), cwd=tmp_path)
    assert done.returncode == 1
    assert "failed" in done.stdout and 'requests permission "config.read"' in done.stdout


def test_verify_ok_and_each_failure(plugin_dir: Callable[..., Path]) -> None:
    bundle = plugin_dir("hello") / "hello"
    done = corral_cli("plugins", "verify", str(bundle))
    assert done.returncode == 0
    assert done.stdout.strip().endswith("sha256 ok, a corral:plugin component; unsigned")

    manifest = bundle / "manifest.yaml"
    original = manifest.read_text()
    manifest.write_text(original.replace("memory_limit: 64MB", "memory_limit: 64XB"))
    done = corral_cli("plugins", "verify", str(bundle))
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert 'runtime.memory_limit: "64XB" is not a size like "64MB"' in done.stderr

    manifest.write_text(original)
    (bundle / "plugin.wasm").write_bytes(b"\0asm tampered")
    done = corral_cli("plugins", "verify", str(bundle))
    assert done.returncode == 1 and "checksum mismatch" in done.stderr
    assert "Traceback" not in done.stderr

    (bundle / "plugin.wasm").unlink()
    done = corral_cli("plugins", "verify", str(bundle))
    assert done.returncode == 1 and "is missing" in done.stderr


def test_inspect_shows_imports_and_exports(config_file: Path) -> None:
    bundle = config_file.parent / "plugins" / "hello"
    done = corral_cli("plugins", "inspect", str(bundle), "--json", "--config", str(config_file))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["permissions"] == ["config.read"]
    assert "corral:plugin/handler@0.1.1" in report["exports"]
    assert "corral:plugin/config@0.1.1" in report["imports"]


def test_call_prints_json_and_maps_errors_to_exit_codes(config_file: Path) -> None:
    done = corral_cli(
        "call", "hello", "greet", "--input", '{"name": "cli"}', "--config", str(config_file)
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"message": "Hi, cli!"}

    done = corral_cli("call", "hello", "nope", "--config", str(config_file))
    assert done.returncode == 1
    assert (
        done.stderr.strip()
        == "corral: plugin 'hello' returned invalid-input: unknown command 'nope' "
        "(known: config, echo, greet, repeat)"
    )

    done = corral_cli("call", "misbehave", "loop", "--config", str(config_file))
    assert done.returncode == 3
    assert "timeout" in done.stderr and done.stderr.count("\n") == 1

    done = corral_cli("call", "hello", "echo", "--input", "{bad", "--config", str(config_file))
    assert done.returncode == 2 and "--input is not JSON" in done.stderr
    for constant in ("NaN", "-Infinity"):
        done = corral_cli(
            "call", "hello", "echo", "--input", f"[1, {constant}]", "--config", str(config_file)
        )
        assert done.returncode == 2
        assert done.stderr == f"corral: --input is not JSON: {constant} is not a JSON value\n"


def test_settings_for_no_bundle_warn_and_fail_with_strict(config_file: Path) -> None:
    settings = yaml.safe_load(config_file.read_text())
    settings["plugins"]["helo"] = {"grant": ["kv"]}
    config_file.write_text(yaml.safe_dump(settings))
    warning = (
        f"plugins.helo in {config_file} names no plugin found in the plugin dirs; "
        'did you mean "hello"?'
    )
    done = corral_cli("plugins", "list", "--config", str(config_file))
    assert done.returncode == 0 and "hello" in done.stdout
    assert done.stderr == f"corral: warning: {warning}\n"
    done = corral_cli("plugins", "list", "--strict", "--config", str(config_file))
    assert done.returncode == 2
    assert done.stderr == f"corral: {warning}; --strict refuses settings for no plugin\n"
    args = ("call", "hello", "echo", "--input", "1", "--config", str(config_file))
    done = corral_cli(*args)
    assert (done.returncode, done.stdout.strip()) == (0, "1")
    assert done.stderr == f"corral: warning: {warning}\n"
    done = corral_cli(*args, "--strict")
    assert done.returncode == 2 and done.stdout == ""


def test_verify_refuses_a_bundle_that_is_not_a_plugin_component(tmp_path: Path) -> None:
    # A valid component, with a matching checksum, that does not export the handler.
    wat = Path(__file__).parent / "components" / "no-handler.wat"
    (tmp_path / "no-handler.wasm").write_bytes(wasmtime.wat2wasm(wat.read_text()))
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "manifest.yaml").write_text(
        "schema_version: '1.0'\nplugin: {name: nohandler, version: 1.0.0}\n"
        'security:\n  permissions: []\n  checksum: ""\n'
    )
    done = corral_cli("build", "--wasm", str(tmp_path / "no-handler.wasm"), str(bundle))
    assert done.returncode == 0, done.stderr
    done = corral_cli("plugins", "verify", str(bundle), cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("corral: plugin.wasm of plugin 'nohandler' does not export ")
    assert done.stderr.count("\n") == 1


def test_build_says_what_is_missing(tmp_path: Path) -> None:
    done = corral_cli("build", str(tmp_path / "nope"))
    assert done.returncode == 1
    assert done.stderr == (
        f"corral: {tmp_path / 'nope'}: no such directory (give the plugin's source directory)\n"
    )
    source = tmp_path / "plugin"
    done = corral_cli("new", "my-plugin", "--dir", str(source))
    assert done.returncode == 0, done.stderr
    # An interpreter where componentize-py cannot be imported, as after `pip install corral`.
    hide = "import sys; sys.modules['componentize_py'] = None; from corral.cli import main; "
    done = subprocess.run(
        [sys.executable, "-c", hide + f"sys.exit(main(['build', {str(source)!r}]))"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip().endswith("pip install 'corral[build]'")
    assert not (source / "plugin.wasm").exists()


def test_config_errors_exit_2_and_debug_shows_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "corral.yaml"
    bad.write_text("plugins:\n  hello:\n    grant: [everything]\n")
    done = corral_cli("plugins", "list", "--config", str(bad))
    assert done.returncode == 2
    assert done.stderr.strip().startswith(f"corral: {bad}: plugins.hello.grant:")
    assert "Traceback" not in done.stderr
    done = corral_cli("--debug", "plugins", "list", "--config", str(bad))
    assert done.returncode == 2 and "Traceback" in done.stderr


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    done = corral_cli("plugins", "frobnicate")
    assert done.returncode == 2
    done = corral_cli("plugins", "list", "--plugins-dir", str(tmp_path / "nope"), cwd=tmp_path)
    assert done.returncode == 2
    assert (
        done.stderr
        == f"corral: plugin dir {tmp_path / 'nope'} does not exist or is not a directory\n"
    )
    assert not (tmp_path / ".corral").exists()  # a mistyped dir leaves no data dir behind
