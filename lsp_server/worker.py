"""The single engine thread: model loading and every model call run here.

The engine is synchronous and holds a device lock, so one dedicated thread
keeps the device from being oversubscribed and keeps the asyncio loop (and
so LSP message handling, cancellation and document sync) responsive while
the model works.  It is a separate executor from pygls' pool, which pygls
uses to read stdin.
"""
from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from engine import CancellationToken, Cancelled, Draft, Engine, InfillRequest, InfillResult

T = TypeVar("T")


@dataclass(frozen=True)
class EngineRun:
    """The result of one engine call (the raw middle, its tokens' probabilities and
    positions, the alternatives) and the time spent inside the engine."""

    result: InfillResult
    engine_ms: float
    queue_ms: float
    steps: int

    @property
    def middle(self) -> str:
        return self.result.middle


class EngineWorker:
    """Runs callables on one background thread and awaits them from asyncio."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="diffill-engine")
        self._running = 0
        self._lock = threading.Lock()
        self._closed = False

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the engine thread; ``Cancelled`` once the server is shutting down."""
        if self._closed:
            raise Cancelled("the server is shutting down")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._run, fn, *args)

    def _run(self, fn: Callable[..., T], *args: Any) -> T:
        with self._lock:
            self._running += 1
        try:
            return fn(*args)
        finally:
            with self._lock:
                self._running -= 1

    @property
    def busy(self) -> bool:
        """Whether a call is running now (a model load cannot be interrupted)."""
        return self._running > 0

    def shutdown(self) -> None:
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)


def run_infill(
    engine: Engine,
    request: InfillRequest,
    token: CancellationToken,
    on_draft: Callable[[Draft], None] | None,
    submitted: float,
) -> EngineRun:
    """Worker-thread body: run one request, streaming drafts if asked.

    Raises ``engine.Cancelled`` if ``token`` was cancelled while queued or
    within one denoising step of being cancelled while running.
    """
    started = time.perf_counter()
    token.raise_if_cancelled()
    if on_draft is None:
        result = engine.infill(request, token)
        steps = result.forwards
    else:
        drafts, steps = engine.stream(request, token), 0
        while True:
            try:
                draft = next(drafts)
            except StopIteration as stop:
                result = stop.value
                break
            steps = draft.step + 1
            on_draft(draft)
    done = time.perf_counter()
    return EngineRun(result, (done - started) * 1000.0, (started - submitted) * 1000.0, steps)
