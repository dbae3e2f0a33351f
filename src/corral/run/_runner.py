"""`run_plugin`: build if stale, load into a host of its own, make one call, report on it."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import _observe
from .._build_js import is_js_plugin
from .._errors import ConfigError, CorralError, PluginUnavailable
from .._exit import UsageError
from .._validation import validate_model
from ..build import APP_MODULE, build_cached, link_bundle
from ..bundle import Bundle
from ..capabilities.http._policy import HttpOptions
from ..capabilities.log import LogOptions
from ..config import PluginSettings
from ..host import PluginHost
from ..manifest import MANIFEST_FILENAME
from ..permissions import expand_permissions
from ..registry import effective_limits
from ._recorder import CallRecorder
from ._report import RunLimits, RunReport

__all__ = ["run_plugin"]


def _is_source(directory: Path) -> bool:
    return (
        (directory / f"{APP_MODULE}.py").is_file()
        or (directory / APP_MODULE).is_dir()
        or is_js_plugin(directory)
    )


def run_plugin(
    directory: Path,
    command: str,
    input: Any = None,
    *,
    grants: Sequence[str] = (),
    config: Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | None = None,
    data_dir: Path | None = None,
    build_cache: Path | None = None,
) -> RunReport:
    """Call `command` of the plugin in `directory` once, with its manifest's limits.

    `directory` holds a plugin's source (built into `build_cache` unless an up-to-date build is
    there) or a bundle. The plugin gets only the permissions in `grants`, the plugin config
    `config`, the operator `settings` (as under ``plugins.<name>`` in corral.yaml: http,
    credentials, limits...) and `data_dir` (default: a new directory, removed afterwards).

    The call's error, if it failed or trapped, is in the report. Errors before the call are
    raised: bad settings (`ConfigError`), grants the plugin needs but was not given
    (`UsageError`), a failed build, a plugin that fails to load.
    """
    directory = Path(directory)
    checked = validate_model(PluginSettings, dict(settings or {}), "--settings", ConfigError)
    build_s: float | None = None
    built_now = False
    if _is_source(directory):
        started, stamp = time.monotonic(), time.time()
        bundle = build_cached(directory, build_cache)
        build_s = time.monotonic() - started
        # A bundle found in the cache was written before this run started.
        built_now = (bundle.directory / MANIFEST_FILENAME).stat().st_mtime >= stamp
    else:
        bundle = Bundle.open(directory)
    manifest = bundle.manifest
    options = {
        **(settings or {}),
        "grant": [*checked.grant, *grants],
        "config": {**checked.config, **(config or {})},
    }
    missing = sorted(manifest.requested_permissions - expand_permissions(options["grant"]))
    if missing:
        flags = " ".join(f"--grant {p}" for p in missing)
        raise UsageError(
            f"plugin {bundle.name!r} requests {', '.join(missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not granted; run again with {flags}"
        )
    with tempfile.TemporaryDirectory(prefix="corral-run-") as scratch:
        plugins = Path(scratch) / "plugins"
        # A directory of its own: the bundle's may hold other bundles (a build cache does).
        link_bundle(bundle, plugins)
        data = Path(data_dir) if data_dir is not None else Path(scratch) / "data"
        recorder = CallRecorder()
        started = time.monotonic()
        with PluginHost([plugins], data_dir=data, plugins={bundle.name: options}) as host:
            host.load()
            load_s = time.monotonic() - started
            operator = host.config.settings_for(bundle.name).limits
            limits = effective_limits(manifest, operator.merged_over(host.config.defaults))
            # Valid by now: the host validated them when it loaded the plugin.
            capability_options = checked.capability_options()
            http = HttpOptions.model_validate(capability_options.get("http") or {})
            log = LogOptions.model_validate(capability_options.get("log") or {})
            report = RunReport(
                plugin=bundle.name,
                command=command,
                bundle_dir=bundle.directory,
                build_s=build_s,
                built_now=built_now,
                load_s=load_s,
                compiled_from_cache=host.plugin(bundle.name).from_cache,
                data_dir=data,
                data_dir_kept=data_dir is not None,
                limits=RunLimits(
                    timeout_s=limits.timeout_s,
                    memory_bytes=limits.memory_bytes,
                    fuel=limits.fuel,
                    http_requests=http.max_requests_per_call,
                    output_bytes=limits.max_output_bytes,
                    log_burst=log.burst,
                    log_lines_per_second=log.lines_per_second,
                ),
                requested_permissions=manifest.requested_permissions,
                recorder=recorder,
                memory_before=recorder.memory_now(),
            )
            started = time.monotonic()
            with _observe.watch_call(recorder):
                try:
                    report.result = host.call(bundle.name, command, input)
                except PluginUnavailable:
                    raise  # it did not load: there is no call to report on
                except CorralError as error:
                    report.error = error
            report.wall_s = time.monotonic() - started
    return report
