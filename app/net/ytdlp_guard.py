"""yt-dlp whose every request passes the SSRF guard: each redirect, meta refresh, API call, manifest.

yt-dlp fetches on its own: it follows redirects, meta refreshes and embedded players, and
extractors call APIs and manifests. Checking only the page URL and the final media URL lets
a public page send the server to ``127.0.0.1``. :class:`GuardedYoutubeDL` therefore builds its
request director with one handler only, :class:`GuardedUrllibRH` (yt-dlp's urllib handler,
registered under the same key so that nothing else is chosen), whose connections are made by
:meth:`UrlGuard.connect_infos <app.net.url_guard.UrlGuard.connect_infos>`: the host is
resolved once, every address checked, and the socket connected to a checked address. With the
guard on, yt-dlp uses no proxy (the guard would check the proxy, not the target), and it
fetches only http(s) (and ``data:``) URLs: no ``ftp:`` or ``file:``, whose handlers would
connect or read by themselves.

Each resolution also has a budget (:class:`ResolveBudget`): socket timeouts are shortened to
the time left, past the deadline the handler refuses further requests, and cancelling it (the
caller's timeout) also shuts down the open connections, so a timed-out resolution ends
instead of running on in its thread.
"""

from __future__ import annotations

import functools
import http.client
import socket
import threading
import time
import urllib.request
import weakref
from contextlib import suppress
from typing import Any

import yt_dlp
from yt_dlp.networking._urllib import (
    DataHandler,
    HTTPCookieProcessor,
    HTTPDefaultErrorHandler,
    HTTPErrorProcessor,
    HTTPHandler,
    ProxyHandler,
    RedirectHandler,
    UnknownHandler,
    UrllibRH,
)
from yt_dlp.networking.exceptions import TransportError

from app.net.url_guard import BlockedUrlError, UrlGuard


class BlockedConnectionError(OSError):
    """A connection the guard refused; an ``OSError`` so that urllib and yt-dlp report it as a
    failed request (with the guard's reason) rather than as a crash."""


class ResolveCancelledError(TransportError):  # type: ignore[misc]  # yt-dlp is untyped
    """The resolution's deadline passed or it was cancelled: no further requests."""


class ResolveBudget:
    """Deadline and cancel flag of one resolution, shared with the thread running it.

    :meth:`cancel` also shuts down the connections the resolution has open, so a thread blocked
    reading a page that trickles in (each read within the socket timeout) is woken at once.
    """

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.cancelled = threading.Event()
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._lock = threading.Lock()

    def track(self, sock: socket.socket) -> None:
        """Shut ``sock`` (a connected, possibly TLS-wrapped socket) down on :meth:`cancel`."""
        with self._lock:
            self._sockets.add(sock)
        if self.cancelled.is_set():
            self.cancel()

    def cancel(self) -> None:
        """No further requests; open connections are shut down (a blocked read returns)."""
        self.cancelled.set()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with suppress(OSError, ValueError):
                sock.shutdown(socket.SHUT_RDWR)

    def remaining(self) -> float:
        """Seconds left; raises :class:`ResolveCancelledError` when none are."""
        left = self.deadline - time.monotonic()
        if self.cancelled.is_set() or left <= 0:
            raise ResolveCancelledError("the link's resolve time is up; no further requests are made")
        return left


class _GuardedHTTPHandler(HTTPHandler):  # type: ignore[misc]  # yt-dlp is untyped
    """yt-dlp's urllib HTTP handler with connections made through the guard."""

    def __init__(self, guard: UrlGuard, budget: ResolveBudget | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._guard = guard
        self._budget = budget

    def http_open(self, req: urllib.request.Request) -> Any:
        connection_class = self._make_conn_class(http.client.HTTPConnection, req)
        return self.do_open(functools.partial(self._connection, connection_class), req)

    def https_open(self, req: urllib.request.Request) -> Any:
        connection_class = self._make_conn_class(http.client.HTTPSConnection, req)
        return self.do_open(functools.partial(self._connection, connection_class), req, context=self._context)

    def _connection(
        self, connection_class: type[http.client.HTTPConnection], *args: Any, **kwargs: Any
    ) -> http.client.HTTPConnection:
        connection = connection_class(*args, **kwargs)
        budget = self._budget
        if budget is not None:
            connect = connection.connect

            def connect_tracked() -> None:
                connect()
                if connection.sock is not None:  # the TLS-wrapped socket for https
                    budget.track(connection.sock)

            connection.connect = connect_tracked  # type: ignore[method-assign]
        # (A SOCKS proxy's connection class connects by itself; proxies are only used with the
        # guard off.) http.client's hook for opening the socket (HTTPS wraps it afterwards, SNI = the host name).
        connection._create_connection = self._connect  # type: ignore[attr-defined]
        if self._source_address is not None:
            connection.source_address = (self._source_address, 0)  # type: ignore[attr-defined]
        return connection

    def _connect(
        self,
        address: tuple[str, int],
        timeout: float | None = None,
        source_address: tuple[str, int] | None = None,
    ) -> socket.socket:
        host, port = address
        try:
            infos = self._guard.connect_infos(host, port)
        except BlockedUrlError as exc:
            raise BlockedConnectionError(exc.detail) from exc
        failure: OSError | None = None
        for family, kind, proto, _name, sockaddr in infos:
            if self._budget is not None:
                left = self._budget.remaining()
                timeout = left if timeout is None else min(timeout, left)
            sock = socket.socket(family, kind, proto)
            try:
                if timeout is not None:
                    sock.settimeout(timeout)
                if source_address:
                    sock.bind(source_address)
                sock.connect(sockaddr)
                return sock
            except OSError as exc:
                sock.close()
                failure = exc
        assert failure is not None  # connect_infos never returns an empty list
        raise failure


class GuardedUrllibRH(UrllibRH):  # type: ignore[misc]  # yt-dlp is untyped
    """yt-dlp's urllib request handler, restricted to http(s) and guarded connections."""

    RH_KEY = "Urllib"  # takes the stock handler's place (``YoutubeDL._opener`` looks it up by key)
    RH_NAME = "urllib (SSRF-guarded)"
    _SUPPORTED_URL_SCHEMES = ("http", "https", "data")  # data: URLs make no connection

    def __init__(self, *, guard: UrlGuard, budget: ResolveBudget | None = None, **kwargs: Any) -> None:
        kwargs["enable_file_urls"] = False
        super().__init__(**kwargs)
        self._guard = guard
        self._budget = budget

    def _create_instance(
        self, proxies: dict[str, str], cookiejar: Any, legacy_ssl_support: bool | None = None
    ) -> urllib.request.OpenerDirector:
        opener = urllib.request.OpenerDirector()
        handlers = [
            ProxyHandler(proxies),
            _GuardedHTTPHandler(
                self._guard,
                self._budget,
                debuglevel=int(bool(self.verbose)),
                context=self._make_sslcontext(legacy_ssl_support=legacy_ssl_support),
                source_address=self.source_address,
            ),
            HTTPCookieProcessor(cookiejar),
            DataHandler(),
            UnknownHandler(),
            HTTPDefaultErrorHandler(),
            HTTPErrorProcessor(),
            RedirectHandler(),
        ]
        for handler in handlers:
            opener.add_handler(handler)
        opener.addheaders = []  # no urllib default User-Agent
        return opener

    def _send(self, request: Any) -> Any:
        if self._budget is not None:
            left = self._budget.remaining()
            request.extensions["timeout"] = min(self._calculate_timeout(request), left)
        return super()._send(request)


class GuardedYoutubeDL(yt_dlp.YoutubeDL):  # type: ignore[misc]  # yt-dlp is untyped
    """``yt_dlp.YoutubeDL`` whose only request handler is :class:`GuardedUrllibRH`.

    With the guard enabled, no proxy is used (``proxy`` is forced to direct connections).
    """

    def __init__(
        self, params: dict[str, Any], *, guard: UrlGuard, budget: ResolveBudget | None = None
    ) -> None:
        self._guard = guard
        self._budget = budget
        if guard.enabled:
            params = {**params, "proxy": ""}
        super().__init__(params)

    @functools.cached_property
    def _request_director(self) -> Any:
        handler = functools.partial(GuardedUrllibRH, guard=self._guard, budget=self._budget)
        return self.build_request_director([handler])
