"""Owns the loaded engine: lazy background load with progress, reload when
model/device/dtype settings change, and user-visible errors that never stop
the server."""
from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING

from lsprotocol import types

from engine import Engine, EngineError, load_engine
from lsp_server.config import Settings
from lsp_server.worker import EngineWorker

if TYPE_CHECKING:
    from lsp_server.server import DiffillServer

log = logging.getLogger(__name__)


class EngineUnavailable(Exception):
    """The model could not be loaded; the message is meant for the user."""


class EngineHost:
    """The one engine, loaded on the worker thread when first needed."""

    def __init__(self, server: DiffillServer, worker: EngineWorker) -> None:
        self.server = server
        self.worker = worker
        self.engine: Engine | None = None
        self._key: tuple | None = None
        self._task: asyncio.Task[Engine] | None = None

    def ensure(self, settings: Settings) -> asyncio.Task[Engine]:
        """Start loading if nothing (or a different model) is loaded."""
        key = settings.engine_key()
        if self._task is None or key != self._key:
            self._key = key
            self.engine = None
            self._task = asyncio.ensure_future(self._load(settings, key))
            self._task.add_done_callback(_consume)
        return self._task

    async def get(self, settings: Settings) -> Engine:
        """The engine for ``settings``; waits for a load in progress."""
        return await asyncio.shield(self.ensure(settings))

    async def _load(self, settings: Settings, key: tuple) -> Engine:
        server = self.server
        name = settings.model or "bundled model"
        server.send_status("loading", f"loading {name}")
        progress = await server.progress_begin(f"diffill: loading {name}")
        try:
            engine = await self.worker.call(_load, settings)
        except Exception as exc:  # noqa: BLE001 - every failure is reported, none is fatal
            message = _one_line(exc)
            log.error("model load failed: %s", message)
            server.progress_end(progress, f"failed: {message}")
            server.send_status("error", message)
            server.show_message(f"diffill: could not load the model: {message}", types.MessageType.Error)
            raise EngineUnavailable(message) from exc
        if key != self._key:  # superseded by a newer load while this one ran
            return engine
        self.engine = engine
        server.progress_end(progress, f"loaded on {engine.describe().get('device')}")
        self.send_ready()
        return engine

    def send_ready(self) -> None:
        """``diffill/status`` ready, naming the loaded model (after a load or a request)."""
        if self.engine is None:
            return
        info = self.engine.describe()
        self.server.send_status("ready", f"{info.get('model')} on {info.get('device')} ({info.get('dtype')})",
                                model=str(info.get("model")), device=str(info.get("device")))


def _load(settings: Settings) -> Engine:
    return load_engine(
        settings.model,
        device=settings.device,
        dtype=settings.dtype,
        allow_download=settings.allow_download,
        trust_remote_code=settings.trust_remote_code,
        context_tokens=settings.context_tokens,
        threads=settings.threads,
        progress=False,
    )


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    if not isinstance(exc, EngineError):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text.splitlines()[0] if text else type(exc).__name__


def _consume(task: asyncio.Task) -> None:
    """Mark a failed load's exception as retrieved (it is reported already)."""
    if not task.cancelled():
        task.exception()


def new_token() -> str:
    return f"diffill-load-{uuid.uuid4().hex[:8]}"
