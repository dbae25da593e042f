"""The HTTP client every remote backend shares: timeouts, retries, a
concurrency cap, prompt cancellation and one clear message per failure kind.

Requests run on one asyncio loop in a daemon thread (httpx's async client):
cancelling a request's anyio cancel scope closes its connection at once in
every phase (connecting, waiting for headers, reading a stream), which a
blocking socket read in the engine's worker thread cannot do.  The worker
thread only waits on a queue, and ``CancellationToken.on_cancel`` both cancels
the scope and wakes the worker, so a cancelled request ends well within 50 ms.
"""
from __future__ import annotations

import asyncio
import importlib.util
import json
import queue
import ssl
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal

import anyio
import httpx

from engine.backends.remote.options import ClientOptions
from engine.backends.remote.proxy import describe, proxy_for
from engine.cancellation import CancellationToken
from engine.errors import Cancelled, RemoteError

__all__ = ["ClientOptions", "Framing", "HttpClient", "RETRY_STATUSES", "server_reason"]


def _note_missing_sniffio() -> None:
    """httpcore runs ``import sniffio`` on every request (to name the async
    library); where sniffio is not installed that failed import searches
    ``sys.path`` each time, about 0.4 ms of CPU per request on the 2-core dev
    machine.  Record it as absent once (``None`` in ``sys.modules`` makes the
    import fail at once), which is what the search would find anyway."""
    if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]


_note_missing_sniffio()

#: how a response body is framed: one JSON document, server-sent events
#: (``data: {...}`` lines, OpenAI / vLLM / llama.cpp), or one JSON object per line (Ollama)
Framing = Literal["json", "sse", "ndjson"]
#: statuses that mean "busy, try again": the only ones retried
RETRY_STATUSES = (429, 503)


class _Loop:
    """One event loop thread for the process, started on first use."""

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def get(cls) -> asyncio.AbstractEventLoop:
        with cls._lock:
            if cls._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="diffill-remote", daemon=True).start()
                cls._loop = loop
            return cls._loop


class _Control:
    """One request's cancel scope, set on the loop; ``stop`` runs on the loop too."""

    def __init__(self) -> None:
        self.scope: anyio.CancelScope | None = None
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True
        if self.scope is not None:
            self.scope.cancel()


class HttpClient:
    """Talks to one server (``base_url``); the API key goes in its Authorization
    header and nowhere else (no redirects are followed, so it never leaves it)."""

    def __init__(self, base_url: str, *, api_key: str | None = None,
                 options: ClientOptions | None = None, user_agent: str = "diffill") -> None:
        self.base_url = base_url.rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise RemoteError(f"server URL {base_url!r} must start with http:// or https://")
        self.options = options or ClientOptions()
        headers = {"User-Agent": user_agent}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._headers = headers
        #: resolved once from HTTPS_PROXY / HTTP_PROXY / NO_PROXY (see engine.backends.remote.proxy)
        self.proxy = proxy_for(self.base_url) if self.options.proxy_from_env else None
        self._loop = _Loop.get()
        self._client: httpx.AsyncClient | None = None
        self._slots: asyncio.Semaphore | None = None

    def __repr__(self) -> str:  # never shows the key
        return f"HttpClient({self.base_url!r})"

    # --- public, called from worker threads ---------------------------------

    def events(self, method: str, path: str, body: dict[str, Any] | None, framing: Framing,
               cancel: CancellationToken | None = None) -> Iterator[Any]:
        """Yield the response's JSON documents as they arrive (one for ``json``).

        Raises ``Cancelled`` promptly after ``cancel.cancel()`` (the connection is
        closed) and ``RemoteError`` with one line for every failure."""
        token = cancel or CancellationToken()
        token.raise_if_cancelled()
        inbox: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        control = _Control()

        async def pump() -> None:
            # anyio's cancel scope, not Task.cancel(): httpcore shields its connection
            # cleanup from anyio cancellation only, so a plain task cancel would leave
            # the pooled connection marked active (and the pool would run dry)
            with anyio.CancelScope() as scope:
                control.scope = scope
                if control.stopped:
                    scope.cancel()
                try:
                    async for item in self._events(method, path, body, framing):
                        inbox.put(("item", item))
                    inbox.put(("end", None))
                except RemoteError as exc:
                    inbox.put(("error", exc))
                except Exception as exc:  # noqa: BLE001 - mapped to one line, never a traceback
                    inbox.put(("error", RemoteError(f"{self.base_url}: {type(exc).__name__}: {exc}")))
            if scope.cancelled_caught:
                inbox.put(("cancelled", None))

        asyncio.run_coroutine_threadsafe(pump(), self._loop)

        def stop() -> None:
            self._loop.call_soon_threadsafe(control.stop)
            inbox.put(("cancelled", None))

        unregister = token.on_cancel(stop)
        finished = False
        try:
            while True:
                kind, value = inbox.get()
                if kind == "item":
                    yield value
                elif kind == "end":
                    finished = True
                    return
                elif kind == "cancelled":
                    raise Cancelled("request cancelled")
                else:
                    finished = True
                    raise value
        finally:
            unregister()
            if not finished:  # cancelled, or the caller stopped early: close the connection
                self._loop.call_soon_threadsafe(control.stop)

    def get_json(self, path: str, cancel: CancellationToken | None = None) -> Any:
        """One GET returning JSON (model lists, health checks)."""
        return next(iter(self.events("GET", path, None, "json", cancel)))

    # --- on the loop ----------------------------------------------------------

    def _ensure(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        if self._client is None or self._slots is None:
            o = self.options
            timeout = httpx.Timeout(o.read_timeout_s, connect=o.connect_timeout_s)
            limits = httpx.Limits(max_connections=o.max_concurrency, max_keepalive_connections=o.max_concurrency)
            # TLS verified against the system's trust store (where a company installs its CA),
            # no redirects (the key goes to base_url only), no .netrc credentials from the environment
            # (trust_env off); the proxy, if any, was resolved from the environment in __init__
            tls = ssl.create_default_context()
            self._client = httpx.AsyncClient(base_url=self.base_url, headers=self._headers, timeout=timeout,
                                             limits=limits, verify=tls, follow_redirects=False, trust_env=False,
                                             proxy=self.proxy)
            self._slots = asyncio.Semaphore(o.max_concurrency)
        return self._client, self._slots

    async def _events(self, method: str, path: str, body: dict[str, Any] | None,
                      framing: Framing) -> AsyncIterator[Any]:
        client, slots = self._ensure()
        async with slots:
            attempt = 0
            while True:
                try:
                    request = client.build_request(method, path, json=body)
                    response = await client.send(request, stream=True)
                except httpx.TimeoutException as exc:
                    raise self._timeout(exc) from None
                except httpx.TransportError as exc:
                    raise RemoteError(f"cannot reach the server at {self.base_url}{self._via()} "
                                      f"({_reason(exc)})") from None
                try:
                    if response.status_code in RETRY_STATUSES and attempt < self.options.retries:
                        delay = self._delay(response, attempt)
                        await response.aclose()
                        attempt += 1
                        await asyncio.sleep(delay)
                        continue
                    if response.status_code >= 400:
                        await response.aread()
                        raise self._status_error(response, attempt)
                    async for item in _decode(response, framing, self.base_url):
                        yield item
                    return
                except httpx.TimeoutException as exc:
                    raise self._timeout(exc) from None
                except httpx.TransportError as exc:
                    raise RemoteError(f"the server at {self.base_url} dropped the connection before the "
                                      f"answer was complete ({_reason(exc)})") from None
                finally:
                    await response.aclose()

    def _via(self) -> str:
        return f" through the proxy {describe(self.proxy)}" if self.proxy else ""

    def _delay(self, response: httpx.Response, attempt: int) -> float:
        """Retry-After (seconds, capped) when given, else exponential backoff."""
        header = response.headers.get("retry-after", "")
        try:
            return min(max(float(header), 0.0), self.options.max_retry_after_s)
        except ValueError:
            return self.options.backoff_s * (2 ** attempt)

    def _timeout(self, exc: httpx.TimeoutException) -> RemoteError:
        if isinstance(exc, httpx.ConnectTimeout):
            return RemoteError(f"cannot reach the server at {self.base_url}{self._via()} (no connection within "
                               f"{self.options.connect_timeout_s:g} s)")
        return RemoteError(f"the server at {self.base_url} did not answer within "
                           f"{self.options.read_timeout_s:g} s (read timeout)")

    def _status_error(self, response: httpx.Response, attempt: int) -> RemoteError:
        status = response.status_code
        reason = server_reason(response)
        where = f"the server at {self.base_url}"
        if status in (401, 403):
            return RemoteError(f"{where} refused the credentials (HTTP {status}: {reason}); check the API key "
                               "in the environment variable named by --api-key-env / apiKeyEnv", status)
        if status == 404:
            return RemoteError(f"{where} has no {response.request.url.path} (HTTP 404: {reason}); "
                               "check the URL and the backend kind", status)
        if status in RETRY_STATUSES:
            return RemoteError(f"{where} is busy (HTTP {status}: {reason}) after {attempt + 1} tries", status)
        if 400 <= status < 500:
            return RemoteError(f"{where} rejected the request (HTTP {status}: {reason})", status)
        return RemoteError(f"{where} failed (HTTP {status}: {reason})", status)


def server_reason(response: httpx.Response) -> str:
    """The server's own one-line reason: OpenAI/vLLM ``{"error": {"message"}}``,
    llama.cpp ``{"error": {"message"}}``, Ollama ``{"error": "..."}``, else the text."""
    text = response.text.strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        err = data.get("error", data.get("detail", data.get("message")))
        if isinstance(err, dict):
            err = err.get("message", err)
        if err:
            text = str(err)
    first = text.splitlines()[0] if text else (response.reason_phrase or "no reason given")
    return first[:300]


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


async def _decode(response: httpx.Response, framing: Framing, where: str) -> AsyncIterator[Any]:
    """JSON documents from the body, as the framing delivers them."""
    if framing == "json":
        yield _loads((await response.aread()).decode("utf-8", "replace"), where)
        return
    async for line in response.aiter_lines():
        line = line.strip()
        if not line:
            continue
        if framing == "sse":
            if not line.startswith("data:"):
                continue  # comments (":"), event names, ids
            line = line[5:].strip()
            if line == "[DONE]":
                continue  # read on to the end of the body so that the connection is reused
        yield _loads(line, where)


def _loads(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise RemoteError(f"the server at {where} sent something that is not JSON: {text[:80]!r}") from None
