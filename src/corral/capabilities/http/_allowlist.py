"""Host allowlists: which ``scheme://host:port`` origins a plugin may send requests to.

A pattern is ``scheme://host[:port]``: scheme ``http`` or ``https``; host an exact DNS name,
``*.example.com`` (any subdomain at any depth, not ``example.com`` itself), an IPv4 literal or a
bracketed IPv6 literal; port a number or ``*``, the scheme's default when left out.

Hosts are compared in one canonical form: lower case, no trailing dot, internationalised names
as punycode (A-labels), IP literals as `ipaddress` prints them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address

import httpx
import idna

__all__ = ["Allowlist", "HostPattern", "url_origin"]

DEFAULT_PORTS = {"http": 80, "https": 443}

_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_EXAMPLE = '"https://api.example.com"'


@dataclass(frozen=True, slots=True)
class HostPattern:
    """One allowlist entry, parsed and normalised; `port` None means any port."""

    scheme: str
    host: str
    """The canonical host; for a wildcard, the domain after ``*.``."""
    wildcard: bool
    port: int | None

    @classmethod
    def parse(cls, text: str) -> HostPattern:
        """Parse ``scheme://host[:port]``; `ValueError` says precisely what is wrong."""
        try:
            return cls(*_parse(text.strip()))
        except ValueError as exc:
            raise ValueError(f'host pattern "{text}": {exc}') from None

    def matches(self, scheme: str, host: str, port: int) -> bool:
        """Whether this pattern admits an origin given in canonical form."""
        if scheme != self.scheme or (self.port is not None and port != self.port):
            return False
        if self.wildcard:
            # An IP literal never ends in ".<suffix>": a suffix's last label is never all digits
            # and canonical IPv6 text has no dots.
            return host.endswith("." + self.host)
        return host == self.host

    def intersect(self, other: HostPattern) -> HostPattern | None:
        """The pattern admitting exactly what both admit, or None if they share nothing."""
        if self.scheme != other.scheme:
            return None
        if self.port is not None and other.port is not None and self.port != other.port:
            return None
        port = other.port if self.port is None else self.port
        if self._covers_host(other):
            return HostPattern(self.scheme, other.host, other.wildcard, port)
        if other._covers_host(self):
            return HostPattern(self.scheme, self.host, self.wildcard, port)
        return None

    def _covers_host(self, other: HostPattern) -> bool:
        if not self.wildcard:
            return not other.wildcard and other.host == self.host
        if other.wildcard and other.host == self.host:
            return True
        return other.host.endswith("." + self.host)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.wildcard:
            host = "*." + host
        if self.port == DEFAULT_PORTS[self.scheme]:
            return f"{self.scheme}://{host}"
        return f"{self.scheme}://{host}:{'*' if self.port is None else self.port}"


class Allowlist:
    """The origins a plugin may reach. Empty denies everything."""

    def __init__(self, patterns: Iterable[HostPattern | str]) -> None:
        parsed = (p if isinstance(p, HostPattern) else HostPattern.parse(p) for p in patterns)
        self.patterns: tuple[HostPattern, ...] = tuple(dict.fromkeys(parsed))

    @classmethod
    def effective(
        cls,
        manifest_patterns: Iterable[HostPattern | str],
        operator_patterns: Iterable[HostPattern | str] | None,
        *,
        operator_hosts: bool = False,
    ) -> Allowlist:
        """What the manifest asks for, narrowed by the operator's list (None: not narrowed).

        A URL is allowed only if both lists allow it; the result lists that intersection
        pattern by pattern, so error messages show what is really reachable. A manifest with
        `operator_hosts` leaves the choice to the operator: a list the operator gives is taken
        whole, and the manifest's own patterns apply only when the operator gives none.
        """
        manifest = cls(manifest_patterns)
        if operator_patterns is None:
            return manifest
        operator = cls(operator_patterns)
        if operator_hosts:
            return operator
        return cls(
            both
            for mine in manifest.patterns
            for theirs in operator.patterns
            if (both := mine.intersect(theirs)) is not None
        )

    def allows(self, url: httpx.URL | str) -> bool:
        """Whether `url` (absolute, http or https, without user info) is on the list."""
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL:
            return False
        if parsed.userinfo or parsed.scheme not in DEFAULT_PORTS or not parsed.raw_host:
            return False
        host = _canonical_url_host(parsed)
        port = parsed.port or DEFAULT_PORTS[parsed.scheme]
        return any(pattern.matches(parsed.scheme, host, port) for pattern in self.patterns)

    def ip_literals(self) -> frozenset[IPv4Address | IPv6Address]:
        """The addresses named by patterns whose host is an IP literal."""
        return frozenset(
            ip_address(p.host) for p in self.patterns if not p.wildcard and _is_ip(p.host)
        )

    def __str__(self) -> str:
        return ", ".join(map(str, self.patterns)) or "none"

    def __repr__(self) -> str:
        return f"Allowlist([{', '.join(repr(str(p)) for p in self.patterns)}])"


def url_origin(url: httpx.URL) -> str:
    """``scheme://host[:port]`` of `url`, host as sent on the wire (punycode, not Unicode)."""
    host = url.raw_host.decode("ascii")
    if ":" in host:
        host = f"[{host}]"
    return f"{url.scheme}://{host}" if url.port is None else f"{url.scheme}://{host}:{url.port}"


def _parse(text: str) -> tuple[str, str, bool, int | None]:
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise ValueError(f"no scheme; write it like {_EXAMPLE}")
    scheme = scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f'the scheme must be http or https, not "{scheme}"')
    for char, part in (("@", "user info"), ("/", "a path"), ("?", "a query"), ("#", "a fragment")):
        if char in rest:
            raise ValueError(f'a pattern is only "scheme://host[:port]", without {part}')
    wildcard = rest.startswith("*.")
    host, port_text = _split_port(rest.removeprefix("*."))
    if port_text is None:
        port: int | None = DEFAULT_PORTS[scheme]
    elif port_text == "*":
        port = None
    elif port_text.isdigit() and 1 <= int(port_text) <= 65535:
        port = int(port_text)
    else:
        raise ValueError(f'the port must be a number from 1 to 65535 or "*", not "{port_text}"')
    if "*" in host:
        raise ValueError('"*" may only stand for the leading labels, as in "*.example.com"')
    if not host:
        raise ValueError("no host")
    return scheme, _canonical_host(host, wildcard=wildcard), wildcard, port


def _split_port(rest: str) -> tuple[str, str | None]:
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            raise ValueError('an IPv6 address in brackets needs its closing "]"')
        host, after = rest[: end + 1], rest[end + 1 :]
        if after and not after.startswith(":"):
            raise ValueError(f'unexpected "{after}" after the IPv6 address')
        return host, after[1:] if after else None
    if rest.count(":") > 1:
        raise ValueError(f'IPv6 addresses go in brackets: "[{rest}]"')
    host, sep, port = rest.partition(":")
    return host, port if sep else None


def _canonical_url_host(url: httpx.URL) -> str:
    # httpx has already lower-cased the host and turned Unicode names into punycode with the
    # same `idna` package used for patterns below; what is left is the trailing dot and the
    # spelling of IP literals.
    host = url.raw_host.decode("ascii").removesuffix(".")
    try:
        return str(ip_address(host))
    except ValueError:
        return host


def _is_ip(host: str) -> bool:
    try:
        ip_address(host)
    except ValueError:
        return False
    return True


def _canonical_host(host: str, *, wildcard: bool) -> str:
    literal = host.startswith("[") or _looks_numeric(host.removesuffix("."))
    if literal and wildcard:
        raise ValueError('"*." can only precede a domain name, not an IP address')
    if host.startswith("["):
        return _canonical_ipv6(host[1:-1])
    host = host.removesuffix(".")
    if literal:
        try:
            return str(IPv4Address(host))
        except ValueError:
            raise ValueError(f'"{host}" is not an IPv4 address like "192.0.2.10"') from None
    if host.isascii():
        name = host.lower()
    else:
        # The `idna` package (IDNA 2008 with UTS #46 mapping), not Python's "idna" codec: the
        # codec implements the obsolete IDNA 2003 (it maps "ß" to "ss", for one), while httpx
        # encodes URL hosts with this same package, so patterns and URLs agree.
        try:
            name = idna.encode(host, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise ValueError(f'"{host}" is not a valid internationalised name: {exc}') from None
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in name.split(".")):
        raise ValueError(f'"{host}" is not a valid host name')
    return name


def _canonical_ipv6(text: str) -> str:
    try:
        address = IPv6Address(text)
    except ValueError:
        raise ValueError(f'"{text}" is not an IPv6 address') from None
    if address.scope_id:
        raise ValueError("an IPv6 address in a pattern cannot name a zone (%...)")
    return str(address)


def _looks_numeric(host: str) -> bool:
    # A name whose last label is all digits would be read as an IPv4 address by resolvers
    # ("127.1" reaches 127.0.0.1), so it must be a well-formed address or nothing.
    return host.rpartition(".")[2].isdigit()
