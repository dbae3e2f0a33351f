"""The on-disk cache of compiled components.

Wasmtime's `deserialize` trusts its input completely (it is native code), so only files this
host wrote are ever deserialized, and each is checked against the size and CRC-32 recorded when
it was written: a truncated or corrupted artifact is detected and recompiled instead of crashing
the process. The check guards against accidents (a crash, a bad disk, a stray write), not an
attacker: whoever can write the cache directory can already write the host's own files. CRC-32
runs at several GB/s where sha256 here does about one, which keeps a warm load fast.

One cache serves every host of a user, so several processes may fill the same entry at once.
Each file is written to a temporary name and renamed into place, so a reader sees a whole file
or none; and a miss is compiled under an advisory lock on the entry (POSIX), so processes that
start together compile a component once: the second waits, then finds the first one's entry.

Every rebuild of a plugin is a new entry (about 40 MB for a Python plugin), so the cache is
bounded: after storing an entry, the least recently used ones are removed until the total is
within `max_bytes`. A hit marks its entry used (the metadata file's mtime). An entry removed
while another process reads it costs that process a recompile, never a crash: the metadata
goes first, and an artifact is only trusted with its metadata.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import mmap
import os
import re
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from wasmtime import Engine, WasmtimeError
from wasmtime.component import Component

__all__ = ["CompiledCache"]

_log = logging.getLogger("corral.cache")

# A temporary file or an artifact without metadata this old is left from a crash, not a write
# in progress.
_ABANDONED_S = 3600.0
# The files of entries (`_paths`) and their temporary names (`_write_atomically`).
_OURS = re.compile(r"[0-9a-f]{40}\.(json|cwasm|lock)|\.[0-9a-f]{40}\.(json|cwasm)\..+\.tmp")


def _checksum_file(path: Path) -> tuple[int, int]:
    """(size, CRC-32) of a file, read through a memory map (no copy)."""
    with path.open("rb") as file:
        size = os.fstat(file.fileno()).st_size
        if size == 0:
            return 0, zlib.crc32(b"")
        with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as view:
            return size, zlib.crc32(view)


def _write_atomically(path: Path, data: bytes | bytearray) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def _entry_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on `path` while the entry is filled (where possible)."""
    try:
        import fcntl
    except ImportError:  # Windows: concurrent writers may both compile; renames keep it safe
        yield
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        file = path.open("a")
    except OSError:  # a read-only cache: compile without the lock; `_store` will report it
        yield
        return
    with file:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(file.fileno(), fcntl.LOCK_UN)


class CompiledCache:
    """Compiled components under `directory`, keyed by wasm sha256 and engine fingerprint,
    within `max_bytes` in all (entries of any engine)."""

    def __init__(self, directory: Path, engine: Engine, fingerprint: str, max_bytes: int) -> None:
        self.directory = directory
        self._engine = engine
        self._fingerprint = fingerprint
        self._max_bytes = max_bytes

    def _paths(self, wasm_sha256: str) -> tuple[Path, Path]:
        key = hashlib.sha256(f"{wasm_sha256}:{self._fingerprint}".encode()).hexdigest()[:40]
        return self.directory / f"{key}.cwasm", self.directory / f"{key}.json"

    def has(self, wasm_sha256: str) -> bool:
        """Whether a compiled entry exists (it is still checked when loaded)."""
        return all(path.exists() for path in self._paths(wasm_sha256))

    def load(self, wasm_sha256: str, compile_: Callable[[], Component]) -> tuple[Component, bool]:
        """The component for `wasm_sha256`, from the cache or freshly compiled.

        Returns the component and whether it came from the cache.
        """
        artifact, meta = self._paths(wasm_sha256)
        cached = self._load_verified(artifact, meta)
        if cached is not None:
            return cached, True
        with _entry_lock(artifact.with_suffix(".lock")):
            # Another process may have filled the entry while this one waited for the lock.
            cached = self._load_verified(artifact, meta)
            if cached is not None:
                return cached, True
            component = compile_()
            self._store(component, artifact, meta, wasm_sha256)
        return component, False

    def _load_verified(self, artifact: Path, meta: Path) -> Component | None:
        if not artifact.exists() or not meta.exists():
            return None
        try:
            info = json.loads(meta.read_text(encoding="utf-8"))
            expected = (info["artifact_size"], info["artifact_crc32"])
            if _checksum_file(artifact) != expected:
                _log.warning("compiled cache entry %s is corrupted; recompiling", artifact.name)
                return None
            component = Component.deserialize_file(self._engine, str(artifact))
            _mark_used(meta)
            return component
        except (OSError, ValueError, KeyError, TypeError) as exc:
            _log.warning("compiled cache entry %s is unreadable (%s); recompiling", artifact, exc)
        except WasmtimeError as exc:
            first_line = str(exc).splitlines()[0] if str(exc) else "invalid artifact"
            _log.warning("compiled cache entry %s rejected (%s); recompiling", artifact, first_line)
        return None

    def _store(self, component: Component, artifact: Path, meta: Path, wasm_sha256: str) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            data = component.serialize()
            _write_atomically(artifact, data)
            info = {
                "wasm_sha256": wasm_sha256,
                "artifact_size": len(data),
                "artifact_crc32": zlib.crc32(data),
                "engine": self._fingerprint,
            }
            # The metadata is written last: an artifact without it is never trusted.
            _write_atomically(meta, json.dumps(info).encode())
        except OSError as exc:
            # A read-only or full disk costs the next start a recompile, nothing more.
            _log.warning("cannot write compiled cache entry %s: %s", artifact, exc)
            return
        self.prune(keep=meta)

    def prune(self, keep: Path | None = None) -> None:
        """Remove the least recently used entries (never `keep`, a metadata file) until the
        cache is within its size, and what crashed writes left behind."""
        entries, total, now = [], 0, time.time()
        try:
            paths = list(self.directory.iterdir())
        except OSError:
            return
        for path in paths:
            try:
                stat = path.stat()
            except OSError:  # removed meanwhile, by another host's prune
                continue
            if not _OURS.fullmatch(path.name):
                continue  # a cache_dir may be shared with other files: they are not ours
            if path.suffix == ".json":
                try:
                    size = stat.st_size + path.with_suffix(".cwasm").stat().st_size
                except OSError:
                    size = stat.st_size
                entries.append((stat.st_mtime, path, size))
                total += size
            elif now - stat.st_mtime > _ABANDONED_S and _left_by_a_crash(path):
                _remove(path)
        removed, freed = 0, 0
        for _used, meta, size in sorted(entries):  # least recently used first
            if total <= self._max_bytes:
                break
            if meta == keep:
                continue
            _remove(meta)  # first: an artifact without metadata is never trusted
            _remove(meta.with_suffix(".cwasm"))
            _remove(meta.with_suffix(".lock"))
            total -= size
            removed, freed = removed + 1, freed + size
        if removed:
            _log.info(
                "compiled cache %s: removed %d least recently used entries (%d MiB) to stay "
                "within %d MiB",
                self.directory,
                removed,
                freed >> 20,
                self._max_bytes >> 20,
            )


def _left_by_a_crash(path: Path) -> bool:
    """A temporary file, or an artifact or lock without its metadata (a compile that failed or
    died), once they are old enough."""
    if path.suffix == ".tmp":
        return True
    return path.suffix in (".cwasm", ".lock") and not path.with_suffix(".json").exists()


def _mark_used(meta: Path) -> None:
    with contextlib.suppress(OSError):  # a read-only cache: it cannot be pruned either
        os.utime(meta)


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:  # e.g. open elsewhere on Windows: the next prune tries again
        _log.debug("cannot remove %s: %s", path, exc)
