"""Owns the loaded engine: lazy background load with progress, reload when
model/device/dtype settings change, fallbacks (CPU, bundled model) where the
settings allow them, and user-visible errors that never stop the server."""
from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

from lsprotocol import types

from engine import Cancelled, DeviceError, Engine, EngineError, load_engine
from engine.backends.remote.options import ClientOptions
from lsp_server.config import Settings, Use
from lsp_server.notices import Notices
from lsp_server.worker import EngineWorker

log = logging.getLogger(__name__)


class EngineUnavailable(Exception):
    """The model could not be loaded; the message is meant for the user."""


class Superseded(Cancelled):
    """The model settings changed before the load a request waited for began:
    that configuration is stale and is never loaded (the request may ask again
    with the current settings)."""


@dataclass
class Loaded:
    """An engine and what the user must be told about how it was loaded."""

    engine: Engine
    notes: list[str] = field(default_factory=list)


class HostServer(Protocol):
    """What the engine host tells the user through the server (the server
    implements it; the host does not depend on the server's module)."""

    notices: Notices

    def send_status(self, state: str, message: str, **extra: str) -> None: ...

    def show_message(self, message: str, kind: types.MessageType = types.MessageType.Info) -> None: ...

    async def progress_begin(self, title: str) -> str | None: ...

    def progress_end(self, token: str | None, message: str) -> None: ...


class EngineHost:
    """The engine for one use (typing, or the fill command: ``lsp_server.engines``), loaded on
    the worker thread when first needed."""

    def __init__(self, server: HostServer, worker: EngineWorker, use: Use = "typing",
                 beside: Callable[[], Engine | None] | None = None,
                 on_ready: Callable[[], None] | None = None) -> None:
        self.server = server
        self.worker = worker
        self.use: Use = use
        #: the other use's engine, if loaded: a second local model must fit next to it
        self.beside = beside or (lambda: None)
        #: tells the user what is loaded (``Engines.send_ready`` names both models)
        self.on_ready = on_ready or self.send_ready
        self.engine: Engine | None = None
        self._key: tuple | None = None
        self._task: asyncio.Task[Engine] | None = None

    @property
    def failed(self) -> bool:
        """Whether the last load attempt failed (a config change retries it)."""
        task = self._task
        return bool(task and task.done() and not task.cancelled() and task.exception() is not None)

    def ensure(self, settings: Settings, *, retry: bool = False) -> asyncio.Task[Engine]:
        """Start loading if nothing (or a different model) is loaded, or if
        ``retry`` and the last load failed."""
        key = settings.engine_key(self.use)
        if self._task is None or key != self._key or (retry and self.failed):
            self._start(settings.for_use(self.use), key)
        assert self._task is not None
        return self._task

    def settings_changed(self, old: Settings, new: Settings) -> None:
        """Reload when the model settings changed and a model is (being) used;
        after a failed load any configuration change is a retry (the user may
        have fixed the files or the GPU without touching the model setting)."""
        if self._task is None:
            return  # nothing loaded yet: the first request loads with `new`
        if new.engine_key(self.use) != old.engine_key(self.use) or self.failed:
            self.ensure(new, retry=True)

    def fall_back_to_cpu(self, settings: Settings) -> asyncio.Task[Engine]:
        """Replace a CUDA engine by a CPU one for the same settings (out of GPU
        memory); a later change of the model settings tries the GPU again."""
        self._start(replace(settings.for_use(self.use), device="cpu"), settings.engine_key(self.use))
        assert self._task is not None
        return self._task

    def drop(self) -> None:
        """Forget the engine (its use is served by the other one now); a load in progress
        finishes and is discarded."""
        self._key = None
        self._task = None
        self.engine = None

    def _start(self, settings: Settings, key: tuple) -> None:
        """Load with ``settings`` (already the ones for this use) under ``key``."""
        self._key = key
        self.engine = None
        self.server.notices.clear()  # a new model: old problems may be gone
        self._task = asyncio.ensure_future(self._load(settings, key))
        self._task.add_done_callback(_consume)

    async def get(self, settings: Settings) -> Engine:
        """The engine for ``settings``; waits for a load in progress.

        Raises ``Superseded`` when the settings changed and that load was skipped.
        """
        return await asyncio.shield(self.ensure(settings))

    async def _load(self, settings: Settings, key: tuple) -> Engine:
        server = self.server
        name = load_label(settings) + (" (fill model)" if self.use == "fill" else "")
        server.send_status("loading", f"loading {name}" if settings.backend == "local" else f"connecting to {name}")
        progress = await server.progress_begin(f"diffill: loading {name}" if settings.backend == "local"
                                               else f"diffill: connecting to {name}")
        try:
            # checked on the worker thread as the load begins: a load that waited
            # there (behind a request) while the settings changed again is skipped
            this = asyncio.current_task()
            loaded = await self.worker.call(load_with_fallbacks, settings, lambda: self._task is this,
                                            self.beside(), self.use)
        except Cancelled as exc:  # Superseded, or the server is shutting down
            log.info("skipped loading %s: %s", name, exc)
            server.progress_end(progress, f"skipped: {exc}")
            raise
        except Exception as exc:
            message = one_line(exc)
            log.error("model load failed: %s", message)
            server.progress_end(progress, f"failed: {message}")
            if key == self._key:  # a superseded load's failure is of no interest
                which = "the fill model" if self.use == "fill" else "the model"
                server.send_status("error", f"fill model: {message}" if self.use == "fill" else message)
                server.show_message(f"diffill: could not load {which}: {message}. Fix the setting "
                                    "(or the files) and change any diffill setting to retry.",
                                    types.MessageType.Error)
            raise EngineUnavailable(message) from exc
        if key != self._key:  # superseded by a newer load while this one ran
            return loaded.engine
        for note in loaded.notes:
            log.warning("%s", note)
            server.show_message(f"diffill: {note}", types.MessageType.Warning)
        self.engine = loaded.engine
        server.progress_end(progress, f"loaded on {loaded.engine.describe().get('device')}"
                            if settings.backend == "local" else f"using {name}")
        self.on_ready()
        return loaded.engine

    def send_ready(self) -> None:
        """``diffill/status`` ready, naming the loaded model (after a load or a request),
        and, once, what the backend found the user must know (a remote server that
        ignores the suffix, ``Engine.notes``)."""
        if self.engine is None:
            return
        info = self.engine.describe()
        self.server.send_status("ready", ready_message(self.engine), model=str(info.get("model")),
                                device=str(info.get("device")))
        show_notes(self.server, self.engine)


def ready_message(engine: Engine) -> str:
    """What is loaded, as the status says it: a local model with its device and dtype, or an
    inference server by its kind and URL."""
    info = engine.describe()
    if info.get("dtype") == "remote":
        return f"{info.get('backend')} server at {info.get('device')}"
    return f"{info.get('model')} on {info.get('device')} ({info.get('dtype')})"


def show_notes(server: HostServer, engine: Engine) -> None:
    """Tell the user, once, what the backend found they must know (``Engine.notes``: a
    remote server that ignores the suffix, ...)."""
    for note in engine.notes():
        server.notices.show_once(("engine-note", note), f"diffill: {note}", types.MessageType.Warning)


def load_label(settings: Settings) -> str:
    """What a load is about, for the user: the local model (bundled when none is
    set), or the remote server by kind and URL, with the served model's name only
    where the kind sends one (llama-server's /infill serves what it loaded)."""
    if settings.backend == "local":
        return settings.model or "bundled model"
    label = f"{settings.backend} server at {settings.url or '(no url set)'}"
    if settings.model and settings.backend != "llamacpp":
        label += f" (model {settings.model})"
    return label


def load_with_fallbacks(settings: Settings, wanted: Callable[[], bool] | None = None,
                        beside: Engine | None = None, use: Use = "typing") -> Loaded:
    """Load the configured model; where the settings allow, fall back to the
    CPU (CUDA unusable) and then to the bundled model (model unloadable).

    Runs on the worker thread.  Raises the original error if no fallback applies,
    and ``Superseded`` without loading anything if ``wanted()`` says these
    settings are no longer the current ones.  ``beside``: the other use's engine,
    already loaded: a local model that would not fit next to it is refused
    (``DeviceError`` naming both) before anything is loaded.
    """
    if wanted is not None and not wanted():
        raise Superseded("the model settings changed before this load began")
    notes: list[str] = []
    room = Room(beside, use)
    try:
        return Loaded(_load_on_device(settings, notes, room), notes)
    except EngineError as exc:
        if (isinstance(exc, DeviceError) or not settings.fallback_to_bundled or settings.model is None
                or settings.backend != "local"):  # a remote model is not replaced by a local one silently
            raise
        notes.append(f"could not load {settings.model} ({one_line(exc)}); using the bundled model "
                     "instead (setting fallbackToBundled)")
        return Loaded(_load_on_device(replace(settings, model=None), notes, room), notes)


@dataclass(frozen=True)
class Room:
    """What a load must fit next to: the other use's engine (None: nothing else is loaded)."""

    beside: Engine | None
    use: Use

    def check(self, settings: Settings) -> None:
        """Refuse a local model that does not fit the device's free memory next to ``beside``
        (``engine.model_fit.check_room``: one line naming both and which to drop)."""
        other = self.beside
        if other is None or settings.backend != "local" or getattr(other.backend, "serialised", True) is False:
            return
        from engine.model_fit import check_room

        ours, theirs = ("fillModel", "model") if self.use == "fill" else ("model", "fillModel")
        check_room(settings.model, settings.device, settings.dtype, label=ours,
                   beside=str(other.describe().get("model")), beside_label=theirs,
                   beside_device=other.device)


def _load_on_device(settings: Settings, notes: list[str], room: Room | None = None) -> Engine:
    try:
        return _load(settings, room)
    except DeviceError as exc:
        if not (settings.device == "cuda" and settings.fallback_to_cpu):
            raise
        notes.append(f"{one_line(exc)}; running on the CPU instead (setting fallbackToCpu)")
        return _load(replace(settings, device="cpu"), room)


def _load(settings: Settings, room: Room | None = None) -> Engine:
    if room is not None:
        room.check(settings)
    return load_engine(
        settings.model,
        device=settings.device,
        dtype=settings.dtype,
        allow_download=settings.allow_download,
        trust_remote_code=settings.trusts_model_code(),
        context_tokens=settings.context_tokens,
        threads=settings.threads,
        progress=False,
        backend=settings.backend,
        url=settings.url,
        api_key_env=settings.api_key_env,
        remote_options=remote_options(settings),
    )


def remote_options(settings: Settings) -> ClientOptions:
    """The remote client's options from the settings (bounds already checked there)."""
    return ClientOptions(connect_timeout_s=settings.remote_connect_timeout_ms / 1000,
                         read_timeout_s=settings.remote_read_timeout_ms / 1000,
                         retries=settings.remote_retries, proxy_from_env=settings.remote_proxy)


def one_line(exc: BaseException) -> str:
    """The first line of an error, with its type unless it is one of ours."""
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
