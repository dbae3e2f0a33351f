"""`corral run`: one call of a plugin, from its source or bundle, with a report on what the call
used (time, fuel, linear memory, host calls, HTTP requests, log lines and output) against its
limits.

>>> report = run_plugin(Path("examples/hello-python"), "echo", {"msg": "hi"})
>>> report.result, report.wall_s
"""

from ._recorder import CallRecorder, Output
from ._report import RunLimits, RunReport
from ._runner import run_plugin

__all__ = [
    "CallRecorder",
    "Output",
    "RunLimits",
    "RunReport",
    "run_plugin",
]
