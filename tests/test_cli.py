"""The `corral` command in real subprocesses: output, one-line errors, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
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
    assert done.stdout.strip().endswith("sha256 ok; unsigned")

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
    assert "corral:plugin/handler@0.1.0" in report["exports"]
    assert "corral:plugin/config@0.1.0" in report["imports"]


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
