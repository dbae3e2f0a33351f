"""The network guard: which IP addresses a plugin's requests may reach (SSRF protection).

An allowlisted name can still resolve to an internal address (a stale DNS record, an attacker's
domain, DNS rebinding), so after the allowlist the host resolves the name itself, checks every
address, and connects only to the addresses it checked.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

from ..._errors import PermissionDenied, Unavailable

__all__ = [
    "PRIVATE_CLASSES",
    "IPAddress",
    "IPNetwork",
    "NetworkPolicy",
    "Resolver",
    "resolve",
    "system_resolver",
]

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network
Resolver = Callable[[str, int], Sequence[str]]
"""``(host, port) -> IP address strings``; `system_resolver` by default, a stub in tests."""
Remedy = Callable[["IPAddress", str, bool], str]
"""``(blocked address, its class, named literally) -> what would allow it``."""

_LOOPBACK = "loopback"
_PRIVATE = "private"
_LINK_LOCAL = "link-local"
_CGNAT = "carrier-grade NAT"
_RESERVED = "reserved"
_DOCUMENTATION = "documentation"

# Classes an operator lifts as a whole with `allow_private_networks: true`. The rest (cloud
# metadata, multicast, reserved...) open only to an explicit CIDR: no LAN service lives there,
# and the metadata endpoint hands out the machine's cloud credentials.
PRIVATE_CLASSES = frozenset({_LOOPBACK, _PRIVATE, _LINK_LOCAL, _CGNAT})

# First match wins, so narrower networks come before the ranges that contain them.
_BLOCKED: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ip_network(cidr), reason)
    for cidr, reason in (
        ("0.0.0.0/8", "unspecified"),  # 0.0.0.0 reaches the local host on Linux
        ("10.0.0.0/8", _PRIVATE),
        ("100.64.0.0/10", _CGNAT),
        ("127.0.0.0/8", _LOOPBACK),
        ("169.254.169.254/32", "cloud metadata"),
        ("169.254.0.0/16", _LINK_LOCAL),
        ("172.16.0.0/12", _PRIVATE),
        ("192.0.0.0/24", _RESERVED),
        ("192.0.2.0/24", _DOCUMENTATION),
        ("192.88.99.0/24", _RESERVED),
        ("192.168.0.0/16", _PRIVATE),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", _DOCUMENTATION),
        ("203.0.113.0/24", _DOCUMENTATION),
        ("224.0.0.0/4", "multicast"),
        ("255.255.255.255/32", "broadcast"),
        ("240.0.0.0/4", _RESERVED),
        ("::/128", "unspecified"),
        ("::1/128", _LOOPBACK),
        ("64:ff9b:1::/48", _RESERVED),  # local-use NAT64: the IPv4 part's place is not fixed
        ("100::/64", _RESERVED),
        ("2001::/32", "Teredo"),  # the embedded IPv4 client address is obfuscated
        ("2001:db8::/32", _DOCUMENTATION),
        ("3fff::/20", _DOCUMENTATION),
        ("fd00:ec2::254/128", "cloud metadata"),
        ("fc00::/7", _PRIVATE),
        ("fe80::/10", _LINK_LOCAL),
        ("fec0::/10", _PRIVATE),  # site-local, deprecated but still routed by some networks
        ("ff00::/8", "multicast"),
    )
)
_GLOBAL_UNICAST = ip_network("2000::/3")
_NAT64 = ip_network("64:ff9b::/96")


@dataclass(frozen=True)
class NetworkPolicy:
    """Which non-public addresses a plugin may reach; by default, none.

    `allow_private` opens loopback, private (RFC 1918, fc00::/7), link-local and carrier-grade
    NAT ranges; `allowed_cidrs` opens exactly the networks listed, whatever they are.
    """

    allow_private: bool = False
    allowed_cidrs: tuple[IPNetwork, ...] = ()
    named_addresses: frozenset[IPAddress] = frozenset()
    """Addresses the operator named as IP literals in its allowlist: open to a URL that names
    them literally, never to a name that resolves to them (a name can be re-pointed)."""

    def check_address(self, ip: IPAddress) -> str | None:
        """None if the plugin may connect to `ip`, else the address class that blocks it."""
        if any(ip in network for network in self.allowed_cidrs):
            return None
        if isinstance(ip, IPv6Address) and (embedded := _embedded_ipv4(ip)):
            # The packets go to the IPv4 address inside (directly, or through a translator),
            # so that address decides.
            kind, inner = embedded
            reason = self.check_address(inner)
            return None if reason is None else f"{kind} {inner}: {reason}"
        reason = _classify(ip)
        if reason is None or (self.allow_private and reason in PRIVATE_CLASSES):
            return None
        return reason


def resolve(
    host: str,
    port: int,
    resolver: Resolver | None = None,
    *,
    policy: NetworkPolicy,
    plugin: str,
    remedy: Remedy | None = None,
) -> list[IPAddress]:
    """The addresses of `host`, every one of them allowed by `policy`.

    An IP literal is checked without a lookup. Raises `PermissionDenied` naming the first
    blocked address and its class (and `remedy`'s advice), `Unavailable` when the name does
    not resolve.
    """
    try:
        addresses = [ip_address(host)]
        literal = True
        if addresses[0] in policy.named_addresses:
            return addresses
    except ValueError:
        addresses = _lookup(host, port, resolver or system_resolver)
        literal = False
    # One blocked address refuses the whole name, rather than connecting to the others: a name
    # that mixes public and internal records is a rebinding or SSRF setup, not an accident, and
    # the all-or-nothing rule keeps the outcome independent of the order records come in.
    for ip in addresses:
        if reason := policy.check_address(ip):
            who = f'plugin "{plugin}" may not reach'
            advice = f"; {remedy(ip, reason, literal)}" if remedy is not None else ""
            if literal:
                raise PermissionDenied(f"{ip} ({reason}) is an address {who}{advice}")
            raise PermissionDenied(f"{host} resolves to {ip} ({reason}), which {who}{advice}")
    return addresses


def _lookup(host: str, port: int, resolver: Resolver) -> list[IPAddress]:
    try:
        found = resolver(host, port)
    except OSError as exc:
        raise Unavailable(f"cannot resolve {host}: {exc.strerror or exc}") from None
    addresses = list(dict.fromkeys(ip_address(text) for text in found))
    if not addresses:
        raise Unavailable(f"{host} resolves to no address")
    return addresses


def system_resolver(host: str, port: int) -> list[str]:
    """The operating system's answer (``getaddrinfo``), in its preference order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


def _classify(ip: IPAddress) -> str | None:
    for network, reason in _BLOCKED:
        if ip in network:
            return reason
    if isinstance(ip, IPv6Address) and ip not in _GLOBAL_UNICAST:
        return _RESERVED  # outside 2000::/3 nothing is assigned for public unicast
    return None


def _embedded_ipv4(ip: IPv6Address) -> tuple[str, IPv4Address] | None:
    if ip.ipv4_mapped is not None:
        return "IPv4-mapped", ip.ipv4_mapped
    if ip.sixtofour is not None:
        return "6to4", ip.sixtofour
    if ip in _NAT64:
        return "NAT64", IPv4Address(int(ip) & 0xFFFFFFFF)
    if 1 < int(ip) <= 0xFFFFFFFF:  # ::a.b.c.d, but not :: and ::1
        return "IPv4-compatible", IPv4Address(int(ip))
    return None
