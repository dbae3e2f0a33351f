"""`corral build`: compile a plugin to a component with componentize-py or componentize-js,
or bundle a component built with any other toolchain.

A Python plugin's source directory holds `manifest.yaml` and `app.py` (a module defining
``class Handler(exports.Handler)``; it may import sibling modules and packages) and,
optionally, `requirements.txt`: pure-Python packages pip installs into the build. A JavaScript
plugin's holds `plugin.js` instead (see `_build_js`). The build writes `plugin.wasm` and sets
`security.checksum` in the manifest, in place or into `out`. `bundle_component` does the same
with a component file instead of source.

A built component is kept in a per-user cache keyed by everything it was built from (the
plugin's files but its manifest and signature, the WIT, the SDK, the toolchain's version), so
building sources that have not changed (again, elsewhere, or after a test built them) takes
well under a second and yields the same bytes, which the host's compiled cache then also knows.

A Python build reads a copy of the sources, so nothing (no `__pycache__`) is written beside
them, and runs with what can be fixed fixed (hash seed, SOURCE_DATE_EPOCH, no bytecode files,
no host site-packages). componentize-py 0.25 still snapshots an interpreter that drew
build-time randomness, so two builds of one source differ in bytes: compare a rebuilt bundle by
its behaviour, not its sha256, until componentize-py offers a reproducible mode.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import platformdirs

from . import _build_js
from ._errors import BuildError, BundleError, ManifestError
from ._regular_file import read_regular_file
from ._validation import load_yaml_mapping, validate_model
from .bundle import Bundle, BundleLimits, check_component_header, sha256_hex
from .config import default_cache_dir
from .manifest import MANIFEST_FILENAME, Manifest
from .signing import SIGNATURE_FILENAME

__all__ = [
    "APP_MODULE",
    "BUILD_CACHE_DIR_ENV",
    "WIT_DIR",
    "build_cache_dir",
    "build_cached",
    "build_plugin",
    "bundle_component",
    "source_digest",
]

WIT_DIR = Path(__file__).parent / "wit"
SDK_DIR = Path(__file__).parent / "guest"
"""The guest-side helpers (`corral_sdk`), on every plugin's path."""
APP_MODULE = "app"
_WORLD = "plugin"
_CHECKSUM_LINE = re.compile(r"^(?P<indent>[ \t]+)checksum:[^\n]*$", re.MULTILINE)
_PLACEHOLDER = "sha256:" + "0" * 64
REQUIREMENTS = "requirements.txt"
GUEST_PYTHON = "3.14"
"""The CPython componentize-py 0.25 puts in every component."""
BUILD_CACHE_DIR_ENV = "CORRAL_BUILD_CACHE_DIR"
_COMPONENTIZE = (
    "import sys; from componentize_py import script; sys.argv[0] = 'componentize-py'; "
    "sys.exit(script())"
)


def _with_checksum(manifest_text: str, checksum: str, source: Path) -> str:
    """The manifest text with its checksum line replaced; comments and layout are kept."""
    if len(_CHECKSUM_LINE.findall(manifest_text)) != 1:
        raise BuildError(
            f"{source}: needs exactly one `checksum:` line under `security:` for the build to fill "
            '(write `checksum: ""` before the first build)'
        )
    return _CHECKSUM_LINE.sub(lambda m: f'{m["indent"]}checksum: "{checksum}"', manifest_text)


def _failure_reason(output: str) -> str:
    """The line that says what went wrong in componentize-py's report (a Python error)."""
    lines = [line.strip() for line in output.splitlines()]
    if "Caused by:" in lines:
        after = lines[lines.index("Caused by:") + 1 :]
        return next((line for line in after if line), "")
    errors = [line for line in lines if re.match(r"^[A-Za-z_.]*(Error|Exception)\b", line)]
    return errors[-1] if errors else (lines[-1] if lines else "")


def _source_manifest(source: Path) -> tuple[str, Manifest]:
    path = source / MANIFEST_FILENAME
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    if not text:
        raise BuildError(f"{source}: no {MANIFEST_FILENAME}")
    data = load_yaml_mapping(path, ManifestError)
    security = data.get("security")
    if isinstance(security, dict):
        # Before the first build the checksum is empty; everything else must already be valid.
        data["security"] = {**security, "checksum": _PLACEHOLDER}
    return text, validate_model(Manifest, data, str(path), ManifestError)


def build_cache_dir() -> Path:
    """Where built components are kept: `$CORRAL_BUILD_CACHE_DIR`, else the per-user cache dir
    (``~/.cache/corral/builds`` on Linux). Any entry may be deleted at any time."""
    override = os.environ.get(BUILD_CACHE_DIR_ENV)
    if override:
        return Path(override).absolute()
    return platformdirs.user_cache_path("corral", appauthor=False) / "builds"


def build_plugin(
    source: Path, out: Path | None = None, *, timeout_s: float = 600, use_cache: bool = True
) -> Bundle:
    """Build the plugin in `source` into a bundle in `out` (default: `source` itself).

    With `use_cache`, a component built before from the same sources is reused (see
    `build_cache_dir`) instead of built again.
    """
    source = Path(source)
    out = Path(out) if out is not None else source
    if not source.is_dir():
        raise BuildError(f"{source}: no such directory (give the plugin's source directory)")
    is_js = _build_js.is_js_plugin(source)
    is_python = (source / f"{APP_MODULE}.py").is_file() or (source / APP_MODULE).is_dir()
    if not is_js and not is_python:
        raise BuildError(
            f"{source}: no {APP_MODULE}.py (the module that defines Handler) or {_build_js.ENTRY}"
        )
    if is_python and not is_js and importlib.util.find_spec("componentize_py") is None:
        raise BuildError(
            f"{source}: building a Python plugin needs componentize-py, which is not installed "
            "here: pip install 'corral[build]'"
        )
    text, manifest = _source_manifest(source)
    _with_checksum(text, _PLACEHOLDER, source)  # fail before a long build, not after it
    cached = _cache_entry(source)
    component = _read_cached(cached) if use_cache else None
    if component is None:
        with tempfile.TemporaryDirectory(prefix="corral-build-") as tmp:
            wasm = Path(tmp) / "plugin.wasm"
            if is_js:
                _build_js.componentize_js(
                    source, wasm, wit_dir=WIT_DIR, world=_WORLD, timeout_s=timeout_s
                )
            else:
                _componentize_py(source, wasm, Path(tmp), timeout_s)
            component = wasm.read_bytes()
        if use_cache:
            _write_cached(cached, component)
    _install(component, text, manifest, source, out)
    return Bundle.open(out)


def _cache_entry(source: Path) -> Path:
    """Where the build cache keeps the component built from `source` as it is now."""
    return build_cache_dir() / f"{_digest(source, _NOT_BUILT_FROM)}.wasm"


def _read_cached(path: Path) -> bytes | None:
    try:
        data = path.read_bytes()
        check_component_header(path, data, BuildError)
    except (OSError, BuildError):
        return None  # not built yet, or a stray file: build again
    return data


def _write_cached(path: Path, component: bytes) -> None:
    """Keep `component` at `path`; a cache that cannot be written only costs the next build."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # written whole under a private name, then renamed: readers see all of it or nothing
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".", delete=False) as file:
            staged = Path(file.name)
            try:
                file.write(component)
            except OSError:
                staged.unlink()
                raise
        os.replace(staged, path)
    except OSError:
        pass


def bundle_component(component: Path, directory: Path) -> Bundle:
    """Make `directory` a bundle of `component`, a component built with any toolchain.

    `directory` must already hold the manifest (with a `checksum:` line to fill); the component
    is copied to its `runtime.wasm_file`. Whether the component fits the host's world is checked
    when a host loads it. Nothing is written unless the manifest and the component's encoding
    are valid.
    """
    component, directory = Path(component), Path(directory)
    text, manifest = _source_manifest(directory)
    _with_checksum(text, _PLACEHOLDER, directory)
    data = read_regular_file(
        component, BundleLimits().max_component_bytes, "bundles.max_component_size", BuildError
    )
    check_component_header(component, data, BuildError)
    _install(data, text, manifest, directory, directory)
    return Bundle.open(directory)


def _install(wasm: bytes, manifest_text: str, manifest: Manifest, source: Path, out: Path) -> None:
    """Write the component, then the manifest with its checksum, each replaced atomically.

    A signature of the bundle's earlier contents is removed first: it no longer applies, and a
    host would refuse the bundle for it.
    """
    out.mkdir(parents=True, exist_ok=True)
    (out / SIGNATURE_FILENAME).unlink(missing_ok=True)
    target = out / manifest.runtime.wasm_file
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f".{target.name}.tmp")
    staged.write_bytes(wasm)
    os.replace(staged, target)
    manifest_out = out / MANIFEST_FILENAME
    tmp_manifest = manifest_out.with_name(f".{MANIFEST_FILENAME}.tmp")
    checksum = "sha256:" + sha256_hex(wasm)
    tmp_manifest.write_text(_with_checksum(manifest_text, checksum, source), encoding="utf-8")
    os.replace(tmp_manifest, manifest_out)


def _componentize_py(source: Path, wasm: Path, work: Path, timeout_s: float) -> None:
    """Build `source` into `wasm`, working in the empty directory `work`."""
    sources = work / "src"
    shutil.copytree(source, sources, ignore=_not_source)
    path = ["-p", str(sources), "-p", str(SDK_DIR)]
    if (source / REQUIREMENTS).is_file():
        path += ["-p", str(_install_requirements(source, work / "packages", timeout_s))]
    command = [
        sys.executable, "-c", _COMPONENTIZE,
        "-q", "-d", str(WIT_DIR), "-w", _WORLD,
        "componentize", APP_MODULE, *path, "-o", str(wasm),
    ]  # fmt: skip
    done = _run(command, timeout_s, f"{source}: componentize-py")
    if done.returncode != 0 or not wasm.is_file():
        reason = _failure_reason(done.stderr or done.stdout) or f"exit code {done.returncode}"
        raise BuildError(f"{source}: componentize-py failed: {reason}")


def _run(command: list[str], timeout_s: float, what: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=_build_env(),
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BuildError(f"{what} took more than {timeout_s:g} s") from None


def _build_env() -> dict[str, str]:
    """The environment of a build: what varies from run to run, fixed where it can be."""
    # Without VIRTUAL_ENV componentize-py sees only the plugin's sources, its requirements and
    # the SDK, so the host's site-packages never leak into a component.
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env |= {"PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "SOURCE_DATE_EPOCH": "0"}
    return env


def _not_source(directory: str, names: list[str]) -> set[str]:
    return {name for name in names if not _is_source(Path(directory, name))}


_NO_MATCH = re.compile(r"(?:No matching distribution found for|requirement) ([A-Za-z0-9_.\-\[\]]+)")


def _install_requirements(source: Path, target: Path, timeout_s: float) -> Path:
    """pip-install `requirements.txt` into `target`, pure-Python wheels only.

    The guest is CPython on wasm32-wasi: a wheel built for any other platform cannot load
    there, so only ``py3-none-any`` wheels (for the guest's Python) are accepted, and a package
    that has none is named in the error.
    """
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--no-input", "--no-compile", "--target", str(target), "--only-binary=:all:",
        "--implementation", "py", "--abi", "none", "--platform", "any",
        "--python-version", GUEST_PYTHON, "-r", str(source / REQUIREMENTS),
    ]  # fmt: skip
    done = _run(command, timeout_s, f"{source / REQUIREMENTS}: pip")
    if done.returncode != 0:
        missing = _NO_MATCH.search(done.stderr)
        if missing:
            raise BuildError(
                f"{source / REQUIREMENTS}: {missing[1]} has no pure-Python wheel (it needs native "
                "code, which cannot run in a plugin); remove it or use a pure-Python alternative"
            )
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise BuildError(
            f"{source / REQUIREMENTS}: pip failed: {lines[-1] if lines else done.returncode}"
        )
    return target


_NOT_BUILT_FROM = frozenset({MANIFEST_FILENAME, SIGNATURE_FILENAME})
"""Files of a source directory the component does not depend on (the bundle does)."""


def source_digest(source: Path) -> str:
    """A hash of everything a bundle depends on: the plugin's files, the WIT, the toolchain."""
    return _digest(source, frozenset())[:16]


def _digest(source: Path, skip: frozenset[str]) -> str:
    """A hash of the toolchain, the WIT, the SDK and the files of `source` but those its top
    level names in `skip`."""
    from importlib.metadata import version

    source = Path(source)
    digest = hashlib.sha256()
    if _build_js.is_js_plugin(source):
        toolchain, sdk = f"componentize-js {_build_js.TOOLCHAIN_VERSION}", [_build_js.SDK_FILE]
    else:
        toolchain, sdk = version("componentize-py"), sorted(SDK_DIR.rglob("*.py"))
    digest.update(toolchain.encode())
    files = sorted(
        p
        for p in source.rglob("*")
        if p.is_file() and _is_source(p) and not (p.parent == source and p.name in skip)
    )
    for path in [*files, *sorted(WIT_DIR.glob("*.wit")), *sdk]:
        digest.update(str(path.relative_to(path.parent.parent)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _is_source(path: Path) -> bool:
    return (
        "__pycache__" not in path.parts
        and "node_modules" not in path.parts
        and path.name != Path("plugin.wasm").name
        and not path.name.startswith(".")
    )


def build_cached(source: Path, cache_root: Path | None = None) -> Bundle:
    """Build `source` into ``cache_root/<dir>-<digest>/`` unless that bundle already exists.

    Builds take tens of seconds; `corral run`, `corral.testing`, tests and demos call this so
    each source is built once. `cache_root` defaults to ``bundles/`` beside the compiled cache
    (``~/.cache/corral/bundles`` on Linux).
    """
    source = Path(source)
    root = Path(cache_root) if cache_root is not None else default_cache_dir().parent / "bundles"
    out = root / f"{source.name}-{source_digest(source)}"
    if (out / MANIFEST_FILENAME).is_file():
        try:
            return Bundle.open(out)
        except (BundleError, ManifestError):
            pass  # a half-written earlier build: build again
    return build_plugin(source, out)
