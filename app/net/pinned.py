"""HTTP clients whose connections go only to addresses the SSRF guard has just checked.

:class:`UrlGuard.check <app.net.url_guard.UrlGuard.check>` resolves a host and checks its
addresses, but a client that then connects *by name* resolves it a second time, and a DNS
server that answers differently the second time (DNS rebinding) reaches whatever it likes.
Here the check happens inside the connection: the httpcore network backend resolves the host
once through :meth:`UrlGuard.connect_addresses`, which refuses a non-public address, and
connects to the returned addresses themselves. TLS still verifies the certificate against the
host name (httpcore passes it as ``server_hostname``) and the ``Host`` header is unchanged.

Every new connection (the first request, each redirect hop to another origin, each reconnect)
is checked this way; a pooled keep-alive connection was checked when it was opened.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from app.net.url_guard import UrlGuard


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Opens TCP connections only to addresses ``guard`` checked in the same step."""

    def __init__(self, guard: UrlGuard, backend: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._guard = guard
        self._backend = backend or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._guard.connect_addresses(host, port)  # BlockedUrlError
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._backend.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # connect_addresses never returns an empty list
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("Unix sockets are never used for user-supplied URLs")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` over a :class:`GuardedNetworkBackend` (no proxy, no Unix socket)."""

    def __init__(
        self,
        guard: UrlGuard,
        *,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits | None = None,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        super().__init__(verify=verify, limits=limits)
        # Same pool as the parent builds, with the guarded backend underneath.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedNetworkBackend(guard, network_backend),
        )


def guarded_client(guard: UrlGuard, **options: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` for user-supplied URLs: every connection is pinned to checked addresses.

    ``options`` go to ``httpx.AsyncClient`` (``timeout``, ``headers``, ``follow_redirects`` ...).
    Environment proxies are not used (a proxy would make the guard check the proxy, not the
    target). A refused address raises :class:`~app.net.url_guard.BlockedUrlError` from the
    request, like :meth:`UrlGuard.check <app.net.url_guard.UrlGuard.check>` does.
    """
    return httpx.AsyncClient(transport=PinnedTransport(guard), trust_env=False, **options)
