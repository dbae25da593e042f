"""Cancel-previous: at most one live completion request per document.

A new request for a document cancels the one before it (its debounce wait
ends at once, and a running engine call stops within one denoising step), so
a burst of keystrokes ends with exactly one request computed to the end.
"""
from __future__ import annotations

import asyncio
from collections.abc import Hashable

from engine import CancellationToken


class RequestHandle:
    """Cancellation for one request, visible to the engine thread and to asyncio."""

    def __init__(self) -> None:
        self.token = CancellationToken()
        self.event = asyncio.Event()

    def cancel(self) -> None:
        self.token.cancel()
        self.event.set()

    @property
    def cancelled(self) -> bool:
        return self.token.cancelled


class Inflight:
    """Live request handles by key (usually ``(uri, kind)``)."""

    def __init__(self) -> None:
        self._live: dict[Hashable, RequestHandle] = {}

    def begin(self, key: Hashable) -> RequestHandle:
        previous = self._live.get(key)
        if previous is not None:
            previous.cancel()
        handle = RequestHandle()
        self._live[key] = handle
        return handle

    def end(self, key: Hashable, handle: RequestHandle) -> None:
        if self._live.get(key) is handle:
            del self._live[key]

    def cancel_matching(self, predicate) -> int:
        """Cancel every live request whose key satisfies ``predicate``."""
        count = 0
        for key, handle in list(self._live.items()):
            if predicate(key):
                handle.cancel()
                count += 1
        return count

    def cancel_all(self) -> None:
        for handle in self._live.values():
            handle.cancel()
