"""Hot reload: watch the plugin dirs and corral.yaml, apply what changed plugin by plugin.

Filesystem events only say *that* something changed. The reloader waits until the watched
trees have been quiet for `debounce` seconds, then asks the host to `refresh`, which opens every
bundle again and swaps in only those whose bundle or settings changed. A bundle is loaded only
once its manifest and its component agree by checksum (`Bundle.open`), so a half-copied bundle
(manifest first, component later, or a partial component) never loads half-way: it shows as
failed until the copy completes, and the event that completes it triggers the next refresh. A
copy (`cp -r`), a write-to-temp-then-rename (`rsync`) and an atomic rename of the whole bundle
dir all end in such an event.

All refreshes, including the first load, run in one worker thread, and compiles each in a
thread of its own (a Python plugin takes tens of seconds): requests keep being served by the
plugins in force, and other bundles keep being reloaded, while a plugin shows ``compiling``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from .._errors import CorralError
from ..config import HostConfig, load_host_config
from ..host import PluginHost

__all__ = ["Reloader"]

_log = logging.getLogger("corral.serve.reload")

# Opening and reading files (as every refresh does) must not trigger another refresh.
_CHANGES = frozenset({"created", "deleted", "modified", "moved", "closed"})


class _Changes(FileSystemEventHandler):
    def __init__(self, reloader: Reloader) -> None:
        self._reloader = reloader

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in _CHANGES:
            paths = [event.src_path, getattr(event, "dest_path", "")]
            self._reloader.changed([Path(str(p)) for p in paths if p])


class Reloader:
    """Keeps a host's plugins in line with its plugin dirs and its config file.

    `on_config` is called (in the worker thread) with each new configuration once the host has
    taken it. `config_error` holds why the latest edit of the config file was refused, until a
    good edit replaces it.
    """

    def __init__(
        self,
        host: PluginHost,
        config_path: Path | None,
        *,
        debounce: float,
        on_config: Callable[[HostConfig], None] | None = None,
    ) -> None:
        self._host = host
        self._config_path = config_path.absolute() if config_path is not None else None
        self._debounce = debounce
        self._on_config = on_config
        self._observer: BaseObserver | None = None
        self._watched: list[Path] = []
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._last_change = 0.0
        self._config_changed = False
        self._thread: threading.Thread | None = None
        self.config_error = ""
        self.first_load_done = threading.Event()
        self.refreshes = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start watching, and load the plugins in the worker thread."""
        self._observer = Observer()
        self._observer.start()
        self._watch(self._host.config)
        self._thread = threading.Thread(target=self._run, name="corral-reloader", daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Stop watching; a refresh under way (a compile, say) gets `timeout` seconds."""
        self._stopping.set()
        self._wake.set()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout)
        if self._thread is not None:
            self._thread.join(timeout)

    def _watch(self, config: HostConfig) -> None:
        """Watch `config`'s plugin dirs (recursively) and the config file's directory."""
        observer = self._observer
        assert observer is not None
        wanted = [p.absolute() for p in config.plugin_dirs]
        if wanted == self._watched:
            return
        observer.unschedule_all()
        handler = _Changes(self)
        for directory in wanted:
            if directory.is_dir():
                observer.schedule(handler, str(directory), recursive=True)
            else:
                _log.error("plugin dir %s does not exist; not watching it", directory)
        if self._config_path is not None:
            observer.schedule(handler, str(self._config_path.parent), recursive=False)
        self._watched = wanted

    # -- events ------------------------------------------------------------------------------

    def changed(self, paths: list[Path]) -> None:
        """Note changed paths (from the watcher's thread); the worker applies them once quiet."""
        in_plugin_dirs = any(p.is_relative_to(d) for p in paths for d in self._watched)
        config_changed = self._config_path is not None and self._config_path in paths
        if not (in_plugin_dirs or config_changed):
            return  # a neighbour of corral.yaml
        with self._lock:
            self._last_change = time.monotonic()
            self._config_changed |= config_changed
        self._wake.set()

    def _run(self) -> None:
        self._apply(config_changed=False)
        self.first_load_done.set()
        while not self._stopping.is_set():
            self._wake.wait()
            self._wake.clear()
            while True:  # until nothing has changed for `debounce` seconds
                with self._lock:
                    quiet_at = self._last_change + self._debounce
                if time.monotonic() >= quiet_at:
                    break
                if self._stopping.wait(quiet_at - time.monotonic()):
                    return
            if self._stopping.is_set():
                return
            with self._lock:
                config_changed, self._config_changed = self._config_changed, False
            self._apply(config_changed=config_changed)

    def _apply(self, *, config_changed: bool) -> None:
        config = self._read_config() if config_changed else None
        try:
            try:
                self._host.refresh(config, on_compiled=self._wake.set)
            except CorralError as exc:
                if config is None:
                    raise
                self._refuse_config(exc)
                config = None
                self._host.refresh(on_compiled=self._wake.set)
        except CorralError as exc:
            _log.error("reload failed; the plugins in force keep serving: %s", exc)
        except Exception:
            _log.exception("reload failed; the plugins in force keep serving")
        finally:
            self.refreshes += 1
        if config is not None:
            if self.config_error:
                _log.info("%s: configuration applied", self._config_path)
            self.config_error = ""
            self._watch(config)
            if self._on_config is not None:
                self._on_config(config)

    def _read_config(self) -> HostConfig | None:
        assert self._config_path is not None
        try:
            return load_host_config(self._config_path)
        except CorralError as exc:
            self._refuse_config(exc)
            return None

    def _refuse_config(self, error: CorralError) -> None:
        self.config_error = str(error)
        _log.error("%s: keeping the running configuration: %s", self._config_path, error)
