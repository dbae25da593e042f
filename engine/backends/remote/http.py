"""The HTTP client every remote backend shares: timeouts, retries, a
concurrency cap, prompt cancellation and one clear message per failure kind.

Each request runs in the thread that asks for it (the engine's worker
thread), on the standard library's ``http.client`` over a pool of kept-alive
connections (engine.backends.remote.connection).  An earlier version ran
httpx's async client on an event-loop thread: the hops between threads and
the async machinery cost several milliseconds per request on a 2-core machine,
more than the issue's whole client-side budget.  Cancellation does not need
a loop: ``CancellationToken.on_cancel`` shuts the socket down from the
cancelling thread, which wakes the blocked read at once, and a connect in
progress polls the token, so a cancelled request ends well within 50 ms.
"""
from __future__ import annotations

import functools
import http.client
import json
import socket
import ssl
import threading
from collections.abc import Generator, Iterator
from typing import Any, Literal
from urllib.parse import urlsplit

from engine.backends.remote.connection import ConnectionPool, abort
from engine.backends.remote.options import ClientOptions
from engine.backends.remote.proxy import describe, proxy_for
from engine.cancellation import CancellationToken
from engine.errors import Cancelled, RemoteError

__all__ = ["ClientOptions", "Framing", "HttpClient", "RETRY_STATUSES", "server_reason"]

#: how a response body is framed: one JSON document, server-sent events
#: (``data: {...}`` lines, OpenAI / vLLM / llama.cpp), or one JSON object per line (Ollama)
Framing = Literal["json", "sse", "ndjson"]
#: statuses that mean "busy, try again": the only ones retried
RETRY_STATUSES = (429, 503)
#: how often a request waiting for a free slot looks at its cancellation token
SLOT_POLL_S = 0.01


class _Answer:
    """A response's status, reason and body, read whole (errors, retried statuses)."""

    def __init__(self, response: http.client.HTTPResponse, path: str) -> None:
        self.status_code = response.status
        self.reason_phrase = response.reason
        self.path = path
        self.headers = response.headers
        self.text = response.read().decode("utf-8", "replace")


class HttpClient:
    """Talks to one server (``base_url``); the API key goes in its Authorization
    header and nowhere else (no redirects are followed, so it never leaves it)."""

    def __init__(self, base_url: str, *, api_key: str | None = None,
                 options: ClientOptions | None = None, user_agent: str = "diffill") -> None:
        self.base_url = base_url.rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise RemoteError(f"server URL {base_url!r} must start with http:// or https://")
        self.options = options or ClientOptions()
        headers = {"User-Agent": user_agent, "Accept": "application/json, text/event-stream"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._headers = headers
        #: resolved once from HTTPS_PROXY / HTTP_PROXY / NO_PROXY (see engine.backends.remote.proxy)
        self.proxy = proxy_for(self.base_url) if self.options.proxy_from_env else None
        #: TLS verified against the system's trust store (where a company installs its CA), host name checked
        self.tls = ssl.create_default_context() if self.base_url.startswith("https://") else None
        o = self.options
        self._pool = ConnectionPool(self.base_url, self.proxy, self.tls, o.connect_timeout_s, o.read_timeout_s,
                                    keep=o.max_concurrency)
        self._headers.update(self._pool.request_headers)
        #: what every request target starts with: the base URL's own path (if any),
        #: in absolute form through a plain-HTTP proxy
        self._target_base = self._pool.target_prefix + urlsplit(self.base_url).path
        self._slots = threading.BoundedSemaphore(o.max_concurrency)

    def __repr__(self) -> str:  # never shows the key
        return f"HttpClient({self.base_url!r})"

    def events(self, method: str, path: str, body: dict[str, Any] | None, framing: Framing,
               cancel: CancellationToken | None = None) -> Generator[Any, None, None]:
        """Yield the response's JSON documents as they arrive (one for ``json``).

        Raises ``Cancelled`` promptly after ``cancel.cancel()`` (the connection is
        closed) and ``RemoteError`` with one line for every failure."""
        token = cancel or CancellationToken()
        token.raise_if_cancelled()
        while not self._slots.acquire(timeout=SLOT_POLL_S):
            token.raise_if_cancelled()
        try:
            yield from self._exchange(method, path, body, framing, token)
        finally:
            self._slots.release()

    def get_json(self, path: str, cancel: CancellationToken | None = None) -> Any:
        """One GET returning JSON (model lists, health checks)."""
        return next(iter(self.events("GET", path, None, "json", cancel)))

    def close(self) -> None:
        """Close the kept-alive connections."""
        self._pool.close()

    def _exchange(self, method: str, path: str, body: dict[str, Any] | None, framing: Framing,
                  token: CancellationToken) -> Iterator[Any]:
        payload = None if body is None else json.dumps(body).encode("utf-8")
        headers = self._headers if payload is None else {**self._headers, "Content-Type": "application/json"}
        target = self._target_base + path
        attempt = 0
        while True:
            conn = self._pool.take()
            reused = conn.sock is not None
            unwatch = token.on_cancel(functools.partial(abort, conn))
            keep = False
            phase = "send"  # connect failures are told by _connect itself
            try:
                if not reused:
                    self._connect(conn, token)
                try:
                    conn.request(method, target, body=payload, headers=headers)
                    response = conn.getresponse()
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                    if reused and not token.cancelled:
                        continue  # the server closed the idle connection: try again on another one
                    raise
                phase = "read"
                if response.status in RETRY_STATUSES and attempt < self.options.retries:
                    answer = _Answer(response, path)
                    keep = not response.will_close
                    attempt += 1
                    if token.wait(self._delay(answer, attempt - 1)):
                        raise Cancelled("request cancelled")
                    continue
                if response.status >= 400:
                    answer = _Answer(response, path)
                    keep = not response.will_close
                    raise self._status_error(answer, attempt)
                yield from _decode(response, framing, self.base_url)
                token.raise_if_cancelled()  # a shut-down socket reads as the end of the body
                keep = not response.will_close and response.isclosed()
                return
            except (Cancelled, RemoteError):
                raise
            except Exception as exc:  # noqa: BLE001 - mapped to one line, never a traceback
                if token.cancelled:
                    raise Cancelled("request cancelled") from None
                raise self._transport_error(exc, phase) from None
            finally:
                unwatch()
                if keep and not token.cancelled:
                    self._pool.give_back(conn)
                else:
                    conn.close()

    def _connect(self, conn: http.client.HTTPConnection, token: CancellationToken) -> None:
        try:
            self._pool.connect(conn, token)
        except (Cancelled, RemoteError):
            raise
        except TimeoutError:
            if token.cancelled:
                raise Cancelled("request cancelled") from None
            raise RemoteError(f"cannot reach the server at {self.base_url}{self._via()} (no connection within "
                              f"{self.options.connect_timeout_s:g} s)") from None
        except Exception as exc:  # noqa: BLE001 - one line, never a traceback
            if token.cancelled:
                raise Cancelled("request cancelled") from None
            raise RemoteError(f"cannot reach the server at {self.base_url}{self._via()} ({_reason(exc)})") from None

    def _transport_error(self, exc: Exception, phase: str) -> RemoteError:
        if isinstance(exc, (TimeoutError, socket.timeout)):
            return RemoteError(f"the server at {self.base_url} did not answer within "
                               f"{self.options.read_timeout_s:g} s (read timeout)")
        if phase == "send":
            return RemoteError(f"the server at {self.base_url} closed the connection without answering "
                               f"({_reason(exc)})")
        return RemoteError(f"the server at {self.base_url} dropped the connection before the "
                           f"answer was complete ({_reason(exc)})")

    def _via(self) -> str:
        return f" through the proxy {describe(self.proxy)}" if self.proxy else ""

    def _delay(self, answer: _Answer, attempt: int) -> float:
        """Retry-After (seconds, capped) when given, else exponential backoff."""
        header = answer.headers.get("retry-after", "")
        try:
            return min(max(float(header), 0.0), self.options.max_retry_after_s)
        except ValueError:
            return self.options.backoff_s * (2 ** attempt)

    def _status_error(self, answer: _Answer, attempt: int) -> RemoteError:
        status = answer.status_code
        reason = server_reason(answer)
        where = f"the server at {self.base_url}"
        if status in (401, 403):
            return RemoteError(f"{where} refused the credentials (HTTP {status}: {reason}); check the API key "
                               "in the environment variable named by --api-key-env / apiKeyEnv", status)
        if status == 404:
            return RemoteError(f"{where} has no {answer.path} (HTTP 404: {reason}); "
                               "check the URL and the backend kind", status)
        if status in RETRY_STATUSES:
            return RemoteError(f"{where} is busy (HTTP {status}: {reason}) after {attempt + 1} tries", status)
        if 400 <= status < 500:
            return RemoteError(f"{where} rejected the request (HTTP {status}: {reason})", status)
        return RemoteError(f"{where} failed (HTTP {status}: {reason})", status)


def server_reason(response: _Answer) -> str:
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


def _decode(response: http.client.HTTPResponse, framing: Framing, where: str) -> Iterator[Any]:
    """JSON documents from the body, as the framing delivers them."""
    if framing == "json":
        yield _loads(response.read().decode("utf-8", "replace"), where)
        return
    while raw := response.readline():
        line = raw.decode("utf-8", "replace").strip()
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
