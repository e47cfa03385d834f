"""SSRF protection for user-supplied URLs (``file_url``, ``callback_url``, media links).

A URL passes when its scheme is http(s) and every address its host resolves to is public, or
when the host (or the address) is on the configured allowlist. Redirects are followed one hop
at a time so that every ``Location`` is checked the same way (:func:`guarded_stream`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import httpx

from app.errors import ProblemError

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


class BlockedUrlError(ProblemError):
    """A URL the SSRF protection refuses: 422 problem+json with the reason."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(422, f"the URL {_shorten(url)} is not allowed: {reason}", title="URL not allowed")
        self.url = url
        self.reason = reason


def _shorten(url: str, limit: int = 200) -> str:
    return url if len(url) <= limit else url[: limit - 1] + "…"


def _address_kind(address: IPAddress) -> str | None:
    """Why ``address`` is not public, or ``None`` when it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return _address_kind(address.ipv4_mapped)
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
        try:
            parsed = urlsplit(url)
            host = parsed.hostname
            parsed.port  # noqa: B018 - raises on an invalid port
        except ValueError as exc:
            raise BlockedUrlError(url, f"it is not a valid URL ({exc})") from exc
        if parsed.scheme.lower() not in ("http", "https"):
            raise BlockedUrlError(url, "only http:// and https:// URLs are fetched")
        if not host:
            raise BlockedUrlError(url, "it has no host")
        if not self.enabled:
            return
        host = host.lower().rstrip(".")
        if host in self._names:
            return
        try:
            literal: IPAddress | None = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [literal]
        else:
            if host in METADATA_HOSTS:
                raise BlockedUrlError(url, f"{host} is a cloud metadata service")
            if not resolve:
                return
            addresses = await self._resolve(url, host, parsed.port)
        for address in addresses:
            if self._allowed_address(address):
                continue
            kind = _address_kind(address)
            if kind is not None:
                where = f"{host} is" if literal is not None else f"{host} resolves to {address}, which is"
                raise BlockedUrlError(url, f"{where} {kind} (allow it with NETWORK__ALLOWED_HOSTS)")

    async def _resolve(self, url: str, host: str, port: int | None) -> list[IPAddress]:
        loop = asyncio.get_running_loop()
        try:
            # getaddrinfo runs in the loop's default executor, never on the event loop itself.
            infos = await loop.getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise BlockedUrlError(url, f"the host {host} could not be resolved ({exc})") from exc
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
