"""Which proxy, if any, carries requests to the inference server.

Users behind a company proxy expect ``HTTPS_PROXY`` / ``HTTP_PROXY`` /
``ALL_PROXY`` and ``NO_PROXY`` to work, and nothing else read from the
environment (no ``.netrc`` credentials: the API key goes to the configured URL
only).  The proxy is resolved here, once per server URL, with the standard
library's environment rules, and the connection pool
(engine.backends.remote.connection) connects through it: absolute-form
requests for ``http://`` servers, a ``CONNECT`` tunnel for ``https://`` ones.

Loopback hosts never go through a proxy (as Go's ``ProxyFromEnvironment``
does): a proxy's ``localhost`` is not yours.
"""
from __future__ import annotations

import ipaddress
import urllib.request
from urllib.parse import urlsplit

from engine.errors import RemoteError

#: proxy schemes the client speaks (TLS to the proxy itself, or socks, is not supported)
SUPPORTED = ("http",)


def proxy_for(url: str) -> str | None:
    """The proxy URL for requests to ``url``, or None for a direct connection
    (variable names in either case, lowercase first, as the standard library reads them)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host or _is_loopback(host):
        return None
    proxies = urllib.request.getproxies_environment()
    chosen = proxies.get(parts.scheme) or proxies.get("all")
    if not chosen:
        return None
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    if urllib.request.proxy_bypass_environment(netloc, proxies):  # type: ignore[attr-defined]  # not in typeshed
        return None
    if "://" not in chosen:
        chosen = "http://" + chosen  # HTTP_PROXY=proxy:3128, as curl accepts it
    scheme = urlsplit(chosen).scheme
    if scheme not in SUPPORTED:
        raise RemoteError(f"the proxy {_without_password(chosen)} for {url} uses {scheme}://, which diffill "
                          "does not support (use an http:// proxy, or --no-proxy / remoteProxy: false)")
    return chosen


def describe(proxy: str | None) -> str:
    """For messages: the proxy without its password, or 'none'."""
    return _without_password(proxy) if proxy else "none"


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _without_password(proxy: str) -> str:
    parts = urlsplit(proxy)
    if parts.password is None:
        return proxy
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()
