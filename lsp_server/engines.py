"""The server's two engines: one for typing (``model``), one for the fill command (``fillModel``).

Why two: ghost text while typing must come in a few hundred milliseconds, while
the fill command (drafts shown live, the user waits for it) can afford seconds
and a much stronger model, or a team's inference server.  When the fill
settings name nothing else (``fillModel``/``fillBackend``/``fillUrl``/
``fillApiKeyEnv`` null, or equal to the typing ones) one engine serves both and
nothing more is loaded.  The typing model loads at ``initialized`` (as before);
the fill model at the first fill, refused with one line when it does not fit
the device's memory next to the typing model (``engine_host.Room``).
``diffill/status`` names both.
"""
from __future__ import annotations

import asyncio
from typing import Any

from engine import Engine
from lsp_server.config import Settings, Use
from lsp_server.engine_host import EngineHost, HostServer, ready_message, show_notes
from lsp_server.worker import EngineWorker


class Engines:
    """Routes each use to its ``EngineHost`` and sends the status that names both."""

    def __init__(self, server: HostServer, worker: EngineWorker, settings: Settings | None = None) -> None:
        self.server = server
        self.settings = settings or Settings()
        self.typing = EngineHost(server, worker, "typing", beside=lambda: self.fill.engine, on_ready=self.send_ready)
        self.fill = EngineHost(server, worker, "fill", beside=lambda: self.typing.engine, on_ready=self.send_ready)

    # -- what the server and the pipeline use ------------------------------------------
    @property
    def engine(self) -> Engine | None:
        """The typing engine (context budgets, stats): the one every keystroke uses."""
        return self.typing.engine

    @property
    def failed(self) -> bool:
        return self.typing.failed

    def host(self, settings: Settings, use: Use) -> EngineHost:
        """The host that serves ``use`` under ``settings`` (the typing one when the fill settings
        name the same model)."""
        return self.fill if use == "fill" and settings.separate_fill() else self.typing

    def engine_for(self, use: Use) -> Engine | None:
        return self.host(self.settings, use).engine

    def ensure(self, settings: Settings, *, retry: bool = False) -> asyncio.Task[Engine]:
        """Start loading the typing model (at ``initialized``); the fill model waits for a fill."""
        self.settings = settings
        return self.typing.ensure(settings, retry=retry)

    async def get(self, settings: Settings, use: Use = "typing") -> Engine:
        """The engine for ``use`` under ``settings``; waits for (or starts) its load."""
        self.settings = settings
        return await self.host(settings, use).get(settings)

    def settings_changed(self, old: Settings, new: Settings) -> None:
        """Reload what the change concerns; a fill model no longer configured is let go."""
        self.settings = new
        self.typing.settings_changed(old, new)
        if not new.separate_fill():
            if self.fill.engine is not None or self.fill.failed:
                self.fill.drop()
                self.send_ready()
        elif old.separate_fill():
            self.fill.settings_changed(old, new)
        else:
            self.send_ready()  # a fill model is configured now: named in the status, loaded at the first fill

    def fall_back_to_cpu(self, settings: Settings, use: Use = "typing") -> asyncio.Task[Engine]:
        return self.host(settings, use).fall_back_to_cpu(settings)

    # -- what the user is told ------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Both uses as ``diffill/stats`` reports them: the model, device and dtype each runs
        with (``loaded`` false until its first load is done), and whether the fill command has
        its own engine."""
        settings = self.settings
        out: dict[str, Any] = {"separateFill": settings.separate_fill()}
        for use in ("typing", "fill"):
            engine = self.host(settings, use).engine
            if engine is None:
                configured = settings.for_use(use)
                out[use] = {"loaded": False, "model": configured.model, "backend": configured.backend}
            else:
                info = engine.describe()
                out[use] = {"loaded": True, "model": info.get("model"), "device": info.get("device"),
                            "dtype": info.get("dtype"), "backend": info.get("backend")}
        return out

    def send_ready(self) -> None:
        """``diffill/status`` ready, naming the typing model and, when the fill command has its
        own, that one too (``fillModel``, ``fillDevice``), loaded or not yet."""
        typing = self.typing.engine
        if typing is None:
            return
        info = typing.describe()
        message = ready_message(typing)
        extra = {"model": str(info.get("model")), "device": str(info.get("device"))}
        show_notes(self.server, typing)
        settings = self.settings
        if settings.separate_fill():
            fill = self.fill.engine
            if fill is not None:
                fill_info = fill.describe()
                extra["fillModel"], extra["fillDevice"] = str(fill_info.get("model")), str(fill_info.get("device"))
                message += f"; fill: {ready_message(fill)}"
                show_notes(self.server, fill)
            else:
                configured = settings.for_use("fill")
                name = configured.model or ("bundled model" if configured.backend == "local"
                                            else f"{configured.backend} server default")
                extra["fillModel"] = name
                state = "could not be loaded" if self.fill.failed else "loads at the first fill"
                message += f"; fill: {name} ({state})"
        self.server.send_status("ready", message, **extra)
