"""Adaptive debounce: how long to wait for the user to stop typing.

A fixed delay is either too short for a fast typist (every keystroke starts
work that the next one cancels) or too long for a slow one.  We track an
exponential moving average of the interval between requests for a document
and wait a little longer than that while the user is in a burst, bounded to
[base/2, 3*base]; after a pause (interval above 4*base) the base delay applies.
"""
from __future__ import annotations

import time

ALPHA = 0.3


class Debouncer:
    """Per-document typing-rhythm tracker that proposes a delay in seconds."""

    def __init__(self, base_ms: int = 100, adaptive: bool = True) -> None:
        self.base_ms = base_ms
        self.adaptive = adaptive
        self._last: dict[str, float] = {}
        self._ema: dict[str, float] = {}

    def configure(self, base_ms: int, adaptive: bool) -> None:
        self.base_ms = base_ms
        self.adaptive = adaptive

    def observe(self, key: str, now: float | None = None) -> None:
        """Record a request for ``key`` (a document URI)."""
        now = time.monotonic() if now is None else now
        last = self._last.get(key)
        self._last[key] = now
        if last is None:
            return
        interval = (now - last) * 1000.0
        if interval > 4 * self.base_ms:
            self._ema.pop(key, None)
            return
        prev = self._ema.get(key)
        self._ema[key] = interval if prev is None else ALPHA * interval + (1 - ALPHA) * prev

    def delay_ms(self, key: str) -> float:
        """Milliseconds to wait before starting the model for ``key``."""
        if self.base_ms <= 0:
            return 0.0
        ema = self._ema.get(key)
        if not self.adaptive or ema is None:
            return float(self.base_ms)
        return min(max(1.2 * ema, self.base_ms / 2), 3.0 * self.base_ms)

    def forget(self, key: str) -> None:
        self._last.pop(key, None)
        self._ema.pop(key, None)
