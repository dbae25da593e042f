"""A thread-safe cancellation token checked between denoising steps."""
from __future__ import annotations

import threading

from engine.errors import Cancelled


class CancellationToken:
    """Set from any thread; the sampler loop checks it before every forward pass,
    so a cancelled request stops within one step."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled("request cancelled")
