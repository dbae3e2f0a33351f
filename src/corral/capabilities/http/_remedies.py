"""What would allow a refused request: the one setting to change, named as the operator wrote
its settings (corral.yaml or `PluginHost` arguments).

A refusal that only says "not allowed" sends the operator reading the source; naming the key
(and whether the manifest, which the operator cannot widen, is what stands in the way) ends it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import ip_network

import httpx

from ..._settings_origin import SettingsOrigin
from ._allowlist import url_origin
from ._guard import PRIVATE_CLASSES, IPAddress
from ._policy import HttpPolicy

__all__ = ["HttpRemedies"]


@dataclass(frozen=True)
class HttpRemedies:
    """The fixes for plugin `plugin`'s refused requests under `policy`."""

    plugin: str
    policy: HttpPolicy
    origin: SettingsOrigin = field(default_factory=SettingsOrigin)

    def _setting(self, key: str, value: object) -> str:
        return self.origin.setting(f"plugins.{self.plugin}.http.{key}", value)

    def _with_operator_hosts(self, url: httpx.URL) -> list[str]:
        """The operator's allowed_hosts with `url`'s origin added."""
        listed = self.policy.operator_allowlist
        return [*(str(p) for p in (listed.patterns if listed else ())), url_origin(url)]

    def unlisted(self, url: httpx.URL) -> str:
        """How `url`'s origin gets onto the plugin's allowlist."""
        wanted = url_origin(url)
        policy = self.policy
        manifest = (
            policy.allowlist if policy.manifest_allowlist is None else policy.manifest_allowlist
        )
        if not policy.operator_hosts and not manifest.allows(url):
            return (
                "its manifest does not list it, and the operator can only narrow that list: "
                f'add "{wanted}" to security.allowed_hosts in the plugin\'s manifest.yaml'
            )
        return "the operator allows it with " + self._setting(
            "allowed_hosts", self._with_operator_hosts(url)
        )

    def blocked(self, url: httpx.URL, ip: IPAddress, reason: str, literal: bool) -> str:
        """How the operator lets the plugin reach `ip`, blocked as `reason`."""
        if literal:
            # An IP literal the operator lists is reachable whatever its class.
            setting = self._setting("allowed_hosts", self._with_operator_hosts(url))
        elif reason.rpartition(": ")[2] in PRIVATE_CLASSES:  # "IPv4-mapped 10.0.0.1: private"
            setting = self._setting("allow_private_networks", True)
        else:
            network = ip_network(ip)  # the one address: nothing else of its range opens
            setting = self._setting("allow_private_networks", [str(network)])
        return "the operator allows it with " + setting
