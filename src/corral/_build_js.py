"""Building JavaScript plugins with componentize-js.

A JavaScript plugin's source directory holds `manifest.yaml` and `plugin.js` (an ES module that
exports `handler`; it may import sibling modules by relative path and `./corral-sdk.js`, which
the build puts beside it). componentize-js runs on Node.js; a pinned version is installed with
npm on first use into a per-user cache shared by every build.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from ._errors import BuildError

__all__ = [
    "ENTRY",
    "SDK_FILE",
    "TOOLCHAIN_DIR_ENV",
    "TOOLCHAIN_VERSION",
    "componentize_js",
    "is_js_plugin",
    "toolchain_dir",
]

ENTRY = "plugin.js"
SDK_FILE = Path(__file__).parent / "guest_js" / "corral-sdk.js"
"""The guest-side helpers, copied beside `plugin.js` for every build."""
TOOLCHAIN_VERSION = "0.23.0"
TOOLCHAIN_DIR_ENV = "CORRAL_JS_TOOLCHAIN_DIR"
_PACKAGE = "@bytecodealliance/componentize-js"
_CLI = Path("node_modules", *_PACKAGE.split("/"), "src", "cli.js")
_MIN_NODE_MAJOR = 18
# fetch() and the fetch event need wasi:http, which the host does not link: a component
# importing it would fail to load. stdio, random and clocks use WASI p2, which it does.
_DISABLED_FEATURES = ("http", "fetch-event")
_NOT_STAGED = ("node_modules", "__pycache__", ".*", "plugin.wasm")


def is_js_plugin(source: Path) -> bool:
    """Whether `source` is a JavaScript plugin (it has `plugin.js`)."""
    return (Path(source) / ENTRY).is_file()


def toolchain_dir() -> Path:
    """Where componentize-js versions are installed: `$CORRAL_JS_TOOLCHAIN_DIR`, else the
    user's cache dir (`$XDG_CACHE_HOME` or `~/.cache`) under `corral/js-toolchain`."""
    override = os.environ.get(TOOLCHAIN_DIR_ENV)
    if override:
        return Path(override)
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "corral" / "js-toolchain"


def componentize_js(
    source: Path, wasm: Path, *, wit_dir: Path, world: str, timeout_s: float
) -> None:
    """Build the JavaScript plugin in `source` into the component `wasm`."""
    if (source / SDK_FILE.name).exists():
        raise BuildError(
            f"{source}: has its own {SDK_FILE.name}; remove it (the build supplies the SDK)"
        )
    node = _node()
    cli = _installed_toolchain(timeout_s) / _CLI
    with tempfile.TemporaryDirectory(prefix="corral-build-js-") as tmp:
        # componentize-js lets the engine read the entry's directory: staging a copy keeps
        # node_modules and anything else beside the plugin out of the build.
        staged = Path(tmp) / "src"
        shutil.copytree(source, staged, ignore=shutil.ignore_patterns(*_NOT_STAGED))
        shutil.copyfile(SDK_FILE, staged / SDK_FILE.name)
        command = [
            node, str(cli), str(staged / ENTRY), "--wit", str(wit_dir), "--world-name", world,
            "--disable", *_DISABLED_FEATURES, "-o", str(wasm),
        ]  # fmt: skip
        done = _run(command, "componentize-js", source, timeout_s, cwd=Path(tmp))
        if done.returncode != 0 or not wasm.is_file():
            reason = _failure_reason(done.stderr or done.stdout) or f"exit code {done.returncode}"
            raise BuildError(f"{source}: componentize-js failed: {reason}")


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise BuildError(_needs_node("`node` is not on PATH"))
    done = subprocess.run([node, "--version"], capture_output=True, text=True, check=False)
    found = re.match(r"v(\d+)\.", done.stdout.strip())
    if found is None or int(found[1]) < _MIN_NODE_MAJOR:
        raise BuildError(_needs_node(f"found {done.stdout.strip() or 'an unknown version'}"))
    return node


def _needs_node(detail: str) -> str:
    return (
        f"building a JavaScript plugin needs Node.js {_MIN_NODE_MAJOR} or later with npm ({detail})"
    )


def _installed_toolchain(timeout_s: float) -> Path:
    """The directory holding the pinned componentize-js, installed with npm if missing.

    One build installs while concurrent ones wait on a lock file. npm works in a fresh
    directory that is renamed into place, so a build killed mid-install leaves no half toolchain.
    """
    root = toolchain_dir()
    final = root / TOOLCHAIN_VERSION
    if (final / _CLI).is_file():
        return final
    npm = shutil.which("npm")
    if npm is None:
        raise BuildError(_needs_node("`npm` is not on PATH"))
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{TOOLCHAIN_VERSION}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        if not (final / _CLI).is_file():  # else another build installed it while this one waited
            _npm_install(npm, final, timeout_s)
    return final


def _npm_install(npm: str, final: Path, timeout_s: float) -> None:
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    staging.chmod(0o755)  # mkdtemp's 0700 would hide a shared cache from other users
    try:
        (staging / "package.json").write_text('{"private": true}\n', encoding="utf-8")
        command = [npm, "install", "--no-audit", "--no-fund", f"{_PACKAGE}@{TOOLCHAIN_VERSION}"]
        done = _run(command, "npm install", None, timeout_s, cwd=staging)
        if done.returncode != 0 or not (staging / _CLI).is_file():
            reason = _failure_reason(done.stderr or done.stdout) or f"exit code {done.returncode}"
            raise BuildError(f"installing {_PACKAGE}@{TOOLCHAIN_VERSION} with npm failed: {reason}")
        try:
            staging.rename(final)
        except OSError:
            if (final / _CLI).is_file():
                return  # installed meanwhile by a build that the lock did not hold back
            raise BuildError(
                f"{final} exists but holds no {_PACKAGE}: remove it and build again"
            ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _run(
    command: list[str], what: str, source: Path | None, timeout_s: float, *, cwd: Path
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, cwd=cwd, check=False
        )
    except subprocess.TimeoutExpired:
        where = f"{source}: " if source is not None else ""
        raise BuildError(f"{where}{what} took more than {timeout_s:g} s") from None


def _failure_reason(output: str) -> str:
    """The line that says what went wrong in a Node tool's report: the innermost JavaScript
    error (componentize-js wraps the plugin's own error in a generic one), else npm's first."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    js_errors = [line for line in lines if re.match(r"^[A-Za-z]*Error: ", line)]
    npm_errors = [line for line in lines if line.startswith("npm error")]
    return (js_errors[-1:] or npm_errors[:1] or lines[-1:] or [""])[0]
