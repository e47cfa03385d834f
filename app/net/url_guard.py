"""SSRF protection for user-supplied URLs (``file_url``, ``callback_url``, media links).

A URL passes when its scheme is http(s) and every address its host resolves to is public, or
when the host (or the address) is on the configured allowlist. Redirects are followed one hop
at a time so that every ``Location`` is checked the same way (:func:`guarded_stream`).

Checking a URL and then letting a client resolve its host again leaves a window for DNS
rebinding; connections therefore go through :meth:`UrlGuard.connect_addresses` (async, see
:mod:`app.net.pinned`) or :meth:`UrlGuard.connect_infos` (blocking, see
:mod:`app.net.ytdlp_guard`), which resolve once, check every address and return exactly the
addresses to connect to.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx

from app.errors import Invalid

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA_HOSTS = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "metadata.azure.com",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.tencentyun.com",
        "metadata.platformequinix.com",
    }
)
"""Names of cloud instance-metadata services, refused before any lookup."""

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean ...
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.169.123",  # AWS time sync
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "fd00:ec2::23",
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
    )
)
"""Cloud instance-metadata addresses (most are also link-local or private)."""


class BlockedUrlError(Invalid):
    """A URL the SSRF protection refuses: 422 problem+json with the reason."""

    def __init__(self, url: str, reason: str, *, subject: str = "the URL") -> None:
        super().__init__(f"{subject} {_shorten(url)} is not allowed: {reason}", title="URL not allowed")
        self.url = url
        self.reason = reason


def _shorten(url: str, limit: int = 200) -> str:
    return url if len(url) <= limit else url[: limit - 1] + "…"


IPV4_EMBEDDING_NETWORKS: tuple[tuple[str, ipaddress.IPv6Network], ...] = (
    ("a 6to4", ipaddress.IPv6Network("2002::/16")),
    ("a Teredo", ipaddress.IPv6Network("2001::/32")),
    ("a NAT64", ipaddress.IPv6Network("64:ff9b::/96")),
    ("a local-use NAT64", ipaddress.IPv6Network("64:ff9b:1::/48")),
    ("an IPv4-translated", ipaddress.IPv6Network("::ffff:0:0:0/96")),
    ("an IPv4-compatible", ipaddress.IPv6Network("::/96")),
)
"""IPv6 ranges whose addresses carry an IPv4 address (a relay or translator may forward to it).
They are refused outright: whatever they embed, the IPv4 part is not what the guard checks.
(IPv4-mapped ``::ffff:a.b.c.d`` is the one form checked as its IPv4 address instead.)"""


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address:
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client's (obfuscated) address
    return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)


def _address_kind(address: IPAddress) -> str | None:
    """Why ``address`` is not public, or ``None`` when it is."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return _address_kind(address.ipv4_mapped)
        if address.is_unspecified or address.is_loopback:
            return "an unspecified address" if address.is_unspecified else "a loopback address"
        for kind, network in IPV4_EMBEDDING_NETWORKS:
            if address in network:
                return f"{kind} address (it embeds the IPv4 address {_embedded_ipv4(address)})"
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for kind, flag in (
        ("an unspecified", address.is_unspecified),
        ("a loopback", address.is_loopback),
        ("a link-local", address.is_link_local),
        ("a multicast", address.is_multicast),
        ("a reserved", address.is_reserved),
        ("a private", address.is_private),
    ):
        if flag:
            return f"{kind} address"
    if not address.is_global:
        return "a non-public address"
    return None


class UrlGuard:
    """Checks outbound URLs against SSRF: public addresses only, unless allowlisted.

    ``allowed_hosts`` holds exact host names (case-insensitive) and IP addresses or CIDR
    ranges. A listed name passes whatever it resolves to; a listed range opens its addresses.
    """

    def __init__(self, *, enabled: bool = True, allowed_hosts: Sequence[str] = ()) -> None:
        self.enabled = enabled
        self._names: set[str] = set()
        self._networks: list[IPNetwork] = []
        for entry in allowed_hosts:
            entry = entry.strip()
            if not entry:
                continue
            try:
                self._networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                self._names.add(entry.lower().rstrip("."))

    def _allowed_address(self, address: IPAddress) -> bool:
        candidates: list[IPAddress] = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)
        return any(
            candidate.version == network.version and candidate in network
            for candidate in candidates
            for network in self._networks
        )

    async def check(self, url: str, *, resolve: bool = True) -> None:
        """Raise :class:`BlockedUrlError` (422) unless ``url`` is an http(s) URL to a public host.

        Host names are resolved in a worker thread (the event loop's resolver); every address
        must be public or allowlisted. ``resolve=False`` checks only what the URL itself says
        (scheme, literal addresses, metadata hosts): for URLs stored now and fetched later,
        which are checked in full when they are fetched.
        """
        host, port = self._parse(url)
        if not self.enabled:
            return
        literal = self._literal(url, host)
        if literal is not None or host in self._names or not resolve:
            return
        infos = await self._getaddrinfo(url, host, port or 443)
        self._check_addresses(url, host, _addresses(url, host, infos))

    def _parse(self, url: str) -> tuple[str, int | None]:
        """The URL's host (lower case, no trailing dot) and port; refuses bad URLs and schemes."""
        try:
            parsed = urlsplit(url)
            host = parsed.hostname
            port = parsed.port  # raises on an invalid port
        except ValueError as exc:
            raise BlockedUrlError(url, f"it is not a valid URL ({exc})") from exc
        if parsed.scheme.lower() not in ("http", "https"):
            raise BlockedUrlError(url, "only http:// and https:// URLs are fetched")
        if not host:
            raise BlockedUrlError(url, "it has no host")
        return host.lower().rstrip("."), port

    def _literal(self, url: str, host: str) -> IPAddress | None:
        """``host`` as an IP address (checked here), or ``None`` for a name (refused if a metadata
        service). Call with the guard enabled only."""
        if host in self._names:
            return None
        try:
            literal = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            if host in METADATA_HOSTS:
                raise BlockedUrlError(url, f"{host} is a cloud metadata service") from None
            return None
        self._check_addresses(url, host, [literal], literal=True)
        return literal

    def _check_addresses(
        self, url: str, host: str, addresses: Sequence[IPAddress], *, literal: bool = False
    ) -> None:
        for address in addresses:
            if self._allowed_address(address):
                continue
            kind = _address_kind(address)
            if kind is not None:
                where = f"{host} is" if literal else f"{host} resolves to {address}, which is"
                raise BlockedUrlError(url, f"{where} {kind} (allow it with NETWORK__ALLOWED_HOSTS)")

    async def connect_addresses(self, host: str, port: int) -> list[str]:
        """Resolve ``host`` once, check every address and return the addresses to connect to.

        For the connection itself (see :mod:`app.net.pinned`): connecting to these addresses,
        not to the name, leaves no second lookup for DNS rebinding to answer differently.
        With the guard off, or for an allowlisted name, the resolved addresses are returned
        unchecked. Raises :class:`BlockedUrlError`.
        """
        url = _host_url(host, port)
        host = host.lower().rstrip(".")
        with _about_connection():
            if self.enabled:
                literal = self._literal(url, host)
                if literal is not None:
                    return [str(literal)]
            infos = await self._getaddrinfo(url, host, port)
            addresses = _addresses(url, host, infos)
            if self.enabled and host not in self._names:
                self._check_addresses(url, host, addresses)
        return [str(address) for address in addresses]

    def connect_infos(self, host: str, port: int) -> Sequence[AddrInfo]:
        """Blocking twin of :meth:`connect_addresses` for code running in a thread (yt-dlp):
        ``socket.getaddrinfo`` results whose every address passed the check."""
        url = _host_url(host, port)
        host = host.lower().rstrip(".")
        with _about_connection():
            if self.enabled:
                self._literal(url, host)
            try:
                infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
            except (OSError, UnicodeError) as exc:
                raise BlockedUrlError(url, f"the host {host} could not be resolved ({exc})") from exc
            if self.enabled and host not in self._names:
                self._check_addresses(url, host, _addresses(url, host, infos))
        return infos

    async def _getaddrinfo(self, url: str, host: str, port: int) -> Sequence[AddrInfo]:
        loop = asyncio.get_running_loop()
        try:
            # getaddrinfo runs in the loop's default executor, never on the event loop itself.
            return await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise BlockedUrlError(url, f"the host {host} could not be resolved ({exc})") from exc


AddrInfo = tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[Any, ...]]
"""One ``socket.getaddrinfo`` result."""


@contextmanager
def _about_connection() -> Iterator[None]:
    """Word a refusal as one of a connection (``host:port``) rather than of a URL."""
    try:
        yield
    except BlockedUrlError as exc:
        raise BlockedUrlError(exc.url, exc.reason, subject="the connection to") from exc.__cause__


def _host_url(host: str, port: int) -> str:
    """``host:port``, for messages about a connection (the URL is not known there)."""
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{port}"


def _addresses(url: str, host: str, infos: Sequence[AddrInfo]) -> list[IPAddress]:
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise BlockedUrlError(url, f"the host {host} has no address")
    return addresses


class TooManyRedirectsError(Exception):
    """A guarded request was redirected more often than allowed."""


@asynccontextmanager
async def guarded_stream(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    guard: UrlGuard | None,
    *,
    max_redirects: int = 5,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[httpx.Response]:
    """Open a streamed request, following redirects one hop at a time and checking each with ``guard``.

    Yields the final (non-redirect) response. Raises :class:`BlockedUrlError` for a refused URL
    (the first or any ``Location``) and :class:`TooManyRedirectsError` past ``max_redirects``.
    """
    if guard is not None:
        await guard.check(url)
    request = client.build_request(method, url, headers=headers)
    for _hop in range(max_redirects + 1):
        response = await client.send(request, stream=True, follow_redirects=False)
        next_request = response.next_request
        if next_request is None:
            try:
                yield response
            finally:
                await response.aclose()
            return
        await response.aclose()
        if guard is not None:
            await guard.check(str(next_request.url))
        request = next_request
    raise TooManyRedirectsError(f"more than {max_redirects} redirects from {_shorten(url)}")
