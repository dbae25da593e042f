"""Remote backends behind a proxy: HTTP_PROXY / HTTPS_PROXY / NO_PROXY are
honoured, loopback is never proxied, ``remoteProxy: false`` / ``--no-proxy``
connects directly, and nothing else is read from the environment (no
``.netrc`` credentials).

The proxy here is a loopback stand-in: it takes absolute-form requests
(RFC 9112 section 3.2.2) for a host name that only it can resolve
(``gpu-box.test``, mapped to the llama.cpp stand-in of tests/remote_standin.py),
forwards them and records what it saw; ``CONNECT`` (HTTPS) is recorded and
refused.  A request that does not go through it cannot reach that host.
"""
from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest
from remote_standin import POLL_S, StandinServer

from engine import InfillRequest
from engine.backends.remote import load_remote
from engine.backends.remote.options import ClientOptions
from engine.backends.remote.proxy import describe, proxy_for
from engine.engine import Engine
from engine.errors import RemoteError

HOST = "gpu-box.test"
REQUEST = InfillRequest(prefix="def add(a, b):\n    ", suffix="\n", max_new_tokens=8)
#: short connect timeout: a direct connection to gpu-box.test fails on name resolution
QUICK = ClientOptions(connect_timeout_s=1.0, read_timeout_s=5.0)


class ProxyStandin(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream_port: int) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.upstream_port = upstream_port
        self.seen: list[tuple[str, str]] = []  # (method, request target)
        self.proxy_auth: list[str | None] = []  # the Proxy-Authorization header of each request
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": POLL_S}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ProxyStandin

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_CONNECT(self) -> None:
        self.server.seen.append(("CONNECT", self.path))
        self.send_error(502, "tunnels refused by the test proxy")

    def _forward(self) -> None:
        self.server.seen.append((self.command, self.path))
        self.server.proxy_auth.append(self.headers.get("Proxy-Authorization"))
        target = urlsplit(self.path)
        if target.hostname != HOST:
            self.send_error(502, f"unknown host {target.hostname}")
            return
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("proxy-connection", "connection", "proxy-authorization")}
        upstream = http.client.HTTPConnection("127.0.0.1", self.server.upstream_port, timeout=5)
        upstream.request(self.command, target.path or "/", body=body, headers=headers)
        answer = upstream.getresponse()
        data = answer.read()  # the whole body: streaming is not what this proxy tests
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in ("transfer-encoding", "content-length", "connection"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        upstream.close()

    do_GET = do_POST = _forward


@pytest.fixture()
def servers(monkeypatch) -> Iterator[tuple[StandinServer, ProxyStandin]]:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy",
                 "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with StandinServer("llamacpp") as srv:
        proxy = ProxyStandin(srv.server_address[1])
        try:
            yield srv, proxy
        finally:
            proxy.shutdown()
            proxy.server_close()


def _engine(url: str, options: ClientOptions = QUICK, **kw: Any) -> Engine:
    return Engine(load_remote("llamacpp", url, None, options=options, **kw))


def test_http_proxy_carries_the_request(servers, monkeypatch) -> None:
    srv, proxy = servers
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("DIFFILL_TEST_KEY", "k-123")
    url = f"http://{HOST}:8080"
    assert _engine(url, api_key_env="DIFFILL_TEST_KEY").infill(REQUEST).middle == "return a + b"
    assert proxy.seen == [("GET", f"{url}/props"), ("POST", f"{url}/infill")]  # the served context, then the fill
    assert srv.requests[0]["input_prefix"] == REQUEST.prefix
    assert all(headers["Authorization"] == "Bearer k-123" for headers in srv.headers_seen)


def test_proxy_credentials_go_to_the_proxy_only(servers, monkeypatch) -> None:
    srv, proxy = servers
    monkeypatch.setenv("HTTP_PROXY", proxy.url.replace("http://", "http://alice:s%40cret@"))
    assert _engine(f"http://{HOST}:8080").infill(REQUEST).middle == "return a + b"
    assert set(proxy.proxy_auth) == {"Basic YWxpY2U6c0BjcmV0"}  # base64 of alice:s@cret (probe and fill)
    assert "Proxy-Authorization" not in srv.headers_seen[0]


def test_lowercase_variable_and_no_proxy_bypass(servers, monkeypatch) -> None:
    _, proxy = servers
    monkeypatch.setenv("http_proxy", proxy.url)
    monkeypatch.setenv("NO_PROXY", f"example.org, .{HOST.split('.', 1)[1]}")  # a domain suffix: .test
    with pytest.raises(RemoteError, match=rf"cannot reach the server at http://{HOST}:8080 \("):
        _engine(f"http://{HOST}:8080").infill(REQUEST)
    assert proxy.seen == []


def test_proxy_switched_off(servers, monkeypatch) -> None:
    """remoteProxy: false / --no-proxy: a direct connection even with HTTP_PROXY set."""
    _, proxy = servers
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    with pytest.raises(RemoteError, match="cannot reach the server"):
        _engine(f"http://{HOST}:8080", ClientOptions(connect_timeout_s=1.0, proxy_from_env=False)).infill(REQUEST)
    assert proxy.seen == []


def test_loopback_is_never_proxied(servers, monkeypatch) -> None:
    srv, proxy = servers
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("ALL_PROXY", proxy.url)
    assert _engine(srv.url).infill(REQUEST).middle == "return a + b"
    assert proxy.seen == []
    assert proxy_for("http://localhost:8000") is None and proxy_for("http://[::1]:8000") is None


def test_https_goes_through_https_proxy_with_connect(servers, monkeypatch) -> None:
    _, proxy = servers
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # not used for https URLs
    with pytest.raises(RemoteError, match=rf"cannot reach the server at https://{HOST} through the proxy "
                                          rf"{proxy.url} \("):
        _engine(f"https://{HOST}").infill(REQUEST)
    assert proxy.seen == [("CONNECT", f"{HOST}:443")]


def test_netrc_credentials_are_not_read(servers, monkeypatch, tmp_path) -> None:
    """A client that trusts the environment would send these as Basic auth; the key comes from apiKeyEnv only."""
    srv, proxy = servers
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine {HOST} login alice password secret\nmachine 127.0.0.1 login bob password s2\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    _engine(f"http://{HOST}:8080").infill(REQUEST)
    _engine(srv.url).infill(REQUEST)
    assert len(srv.headers_seen) == 4  # each engine: GET /props, POST /infill
    assert all("Authorization" not in headers for headers in srv.headers_seen)


def test_unsupported_proxy_scheme_and_passwords_in_messages(monkeypatch) -> None:
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "socks5://u:pw@proxy.corp:1080")
    with pytest.raises(RemoteError, match=r"socks5://u:\*\*\*@proxy\.corp:1080 .* does not support") as info:
        _engine("https://gpu-box.corp")
    assert "pw" not in str(info.value)
    monkeypatch.setenv("HTTPS_PROXY", "https://proxy.corp:3128")  # TLS to the proxy itself
    with pytest.raises(RemoteError, match=r"uses https://, which diffill does not support"):
        _engine("https://gpu-box.corp")
    monkeypatch.setenv("HTTPS_PROXY", "proxy.corp:3128")  # no scheme, as curl accepts it
    assert proxy_for("https://gpu-box.corp") == "http://proxy.corp:3128"
    assert describe("http://u:pw@proxy.corp:3128") == "http://u:***@proxy.corp:3128"
