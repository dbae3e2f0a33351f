"""Test instruments that ship with Corral (for plugin authors' tests, benchmarks and demos).

- `PluginHarness` (and the pytest fixture `corral_plugin`, registered when Corral is
  installed): a plugin built from its source directory, loaded into a host of its own with the
  grants, config and network the test chooses. See plugin-sdk/README.md, "Testing your plugin".
- `corral.testing.jira`: a local Jira Cloud emulator (`corral jira-emulator`).
"""

from ._harness import KvView, PluginHarness
from ._logs import LogLine
from ._network import PUBLIC_ADDRESS, ASGIApp, Handler

__all__ = [
    "PUBLIC_ADDRESS",
    "ASGIApp",
    "Handler",
    "KvView",
    "LogLine",
    "PluginHarness",
]
