"""Request limits that protect the editor and the machine from runaway
clients: a document-size bound and a request-rate bound, each refused with a
message that names the setting to change."""
from __future__ import annotations

import time
from collections.abc import Callable

from pygls.exceptions import JsonRpcException

from lsp_server.documents import Document


class RequestFailed(JsonRpcException):
    """LSP ``RequestFailed``: the request was valid but cannot be served."""

    CODE = -32803


class ServerCancelled(JsonRpcException):
    """LSP ``ServerCancelled``: dropped by the server; clients may retry later."""

    CODE = -32802


def document_too_large(doc: Document, max_bytes: int) -> str | None:
    """Why ``doc`` is over ``max_bytes`` (UTF-8), or None if it is within.

    UTF-8 takes 1-4 bytes per character, so most documents are decided from
    their length alone; only the rest are encoded (this runs per keystroke).
    """
    chars = len(doc.text)
    if chars * 4 <= max_bytes:
        return None
    size = chars if chars > max_bytes else len(doc.text.encode("utf-8", "surrogatepass"))
    if size <= max_bytes:
        return None
    return (f"diffill: {doc.uri.rsplit('/', 1)[-1]} is {_mib(size)}, over the {_mib(max_bytes)} limit "
            f"(setting maxDocumentBytes); no completions for it")


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB"


class RateLimiter:
    """Token bucket: ``rate`` requests per second on average, bursts up to
    ``rate`` (one second's worth).  ``rate`` 0 means unlimited."""

    def __init__(self, rate: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.rate = rate
        self._tokens = float(rate)
        self._last = clock()

    def configure(self, rate: int) -> None:
        if rate != self.rate:
            self.rate = rate
            self._tokens = float(rate)

    def allow(self) -> bool:
        """Take one token if there is one."""
        if self.rate <= 0:
            return True
        now = self._clock()
        self._tokens = min(float(self.rate), self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
