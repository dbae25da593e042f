"""A thread-safe cancellation token checked between denoising steps."""
from __future__ import annotations

import threading
from collections.abc import Callable

from engine.errors import Cancelled


class CancellationToken:
    """Set from any thread; the sampler loop checks it before every forward pass,
    so a cancelled request stops within one step.

    Work that blocks outside the sampler loop (a remote backend waiting on a
    socket) registers a callback with :meth:`on_cancel`, which runs at once in
    the cancelling thread, so it can close the connection without polling.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []

    def cancel(self) -> None:
        with self._lock:
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, waking at once on cancellation; True if cancelled."""
        return self._event.wait(seconds)

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled("request cancelled")

    def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` when the token is cancelled (now, if it already is).

        Returns a function that unregisters it (call it when the work ends)."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return lambda: self._remove(callback)
        callback()
        return lambda: None

    def _remove(self, callback: Callable[[], None]) -> None:
        with self._lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)
