"""Opening, reusing and aborting HTTP connections to one inference server.

The remote client runs each request in the thread that asked for it (the
engine's worker thread) with the standard library's ``http.client``: no
event-loop thread to hop to and back, about 0.2 ms of CPU per request where
an async client took several.  What a blocking socket cannot do by itself,
these helpers add:

* a connect that gives up within one poll interval of a cancellation
  (non-blocking connect, polled with ``select``; a blocking connect would hold
  the thread for the whole connect timeout);
* :func:`abort`: shuts the socket down from the cancelling thread, which wakes
  a read blocked in the worker thread at once (on Linux and macOS alike);
* a small pool of kept-alive connections, at most one per concurrent request.
"""
from __future__ import annotations

import base64
import errno
import http.client
import os
import select
import socket
import ssl
import threading
import time
from urllib.parse import unquote, urlsplit

from engine.cancellation import CancellationToken
from engine.errors import Cancelled

#: how often a connect in progress looks at its cancellation token
CONNECT_POLL_S = 0.01
#: what a non-blocking connect returns while the handshake is under way
_IN_PROGRESS = frozenset({errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY})


def open_socket(address: tuple[str, int], timeout: float | None, token: CancellationToken) -> socket.socket:
    """A connected TCP socket to ``address`` (tried per resolved address, like
    ``socket.create_connection``); raises ``Cancelled`` within ``CONNECT_POLL_S``
    of a cancellation, ``TimeoutError`` after ``timeout`` seconds, ``OSError`` otherwise."""
    host, port = address
    deadline = None if timeout is None else time.monotonic() + timeout
    last: OSError | None = None
    for family, kind, proto, _, where in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            code = sock.connect_ex(where)
            while code in _IN_PROGRESS:
                token.raise_if_cancelled()
                left = CONNECT_POLL_S if deadline is None else min(CONNECT_POLL_S, deadline - time.monotonic())
                if left <= 0:
                    raise TimeoutError("timed out")
                _, writable, _ = select.select([], [sock], [], left)
                if writable:
                    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                raise OSError(code, os.strerror(code))
            sock.setblocking(True)
            sock.settimeout(timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        except (Cancelled, TimeoutError):
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            last = exc
    raise last or OSError(f"no address found for {host}")


def abort(conn: http.client.HTTPConnection) -> None:
    """Wake whatever the connection's owner is blocked on (safe from any thread).

    ``socket.socket.shutdown`` is called on the plain socket even for TLS: an
    ``SSLSocket``'s own shutdown would tear down its TLS state under the
    reading thread's feet."""
    sock = conn.sock
    if sock is not None:
        try:
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass  # already closed or never connected


class ConnectionPool:
    """Connections to one server (directly or through an ``http://`` proxy);
    idle ones are kept for reuse, newest first."""

    def __init__(self, base_url: str, proxy: str | None, tls: ssl.SSLContext | None,
                 connect_timeout_s: float, read_timeout_s: float, keep: int) -> None:
        parts = urlsplit(base_url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.https else 80)
        self.tls = tls
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.keep = keep
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._proxy_host = self._proxy_port = None
        self._proxy_auth: dict[str, str] = {}
        if proxy:
            p = urlsplit(proxy)
            self._proxy_host, self._proxy_port = p.hostname, p.port or 80
            if p.username is not None:
                pair = f"{unquote(p.username)}:{unquote(p.password or '')}".encode()
                self._proxy_auth = {"Proxy-Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
        #: the request target's start: absolute form through a plain-HTTP proxy (RFC 9112 3.2.2)
        self.target_prefix = f"http://{parts.netloc}" if proxy and not self.https else ""
        #: headers every request carries (proxy credentials go to the proxy only)
        self.request_headers = self._proxy_auth if self.target_prefix else {}

    def take(self) -> http.client.HTTPConnection:
        """An idle connection, else a new unconnected one (see :meth:`connect`)."""
        with self._lock:
            if self._idle:
                return self._idle.pop()
        host = self._proxy_host or self.host
        port = self._proxy_port or self.port
        conn: http.client.HTTPConnection
        if self.https:
            conn = http.client.HTTPSConnection(host, port, timeout=self.connect_timeout_s, context=self.tls)
            if self._proxy_host:
                conn.set_tunnel(self.host, self.port, headers=self._proxy_auth)  # CONNECT, then TLS inside
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self.connect_timeout_s)
        return conn

    def connect(self, conn: http.client.HTTPConnection, token: CancellationToken) -> None:
        """Connect a new connection (TCP, proxy tunnel, TLS), cancellably; then
        reads wait at most the read timeout."""
        conn._create_connection = (  # type: ignore[attr-defined]  # http.client's own hook for making the socket
            lambda address, timeout, source=None: open_socket(address, timeout, token))
        conn.connect()
        assert conn.sock is not None
        conn.sock.settimeout(self.read_timeout_s)

    def give_back(self, conn: http.client.HTTPConnection) -> None:
        """Keep a connection whose answer was read to the end, for the next request."""
        with self._lock:
            if len(self._idle) < self.keep:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

