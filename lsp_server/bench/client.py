"""The client both benchmarks drive the server with: a pygls client plus the
handlers every run needs, the initialize options and a best-effort shutdown."""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from lsp_server import methods


class BenchClient:
    """A thin wrapper over pygls' client that records what an editor would show.

    ``bench lsp`` uses it as is; ``bench soak`` adds its own handlers on ``client``.
    """

    def __init__(self, name: str = "diffill-bench") -> None:
        # imported here, not at the top: `diffill` registers the bench parsers at every start
        from lsprotocol import types
        from pygls.lsp.client import LanguageClient

        self.types = types
        self.client = LanguageClient(name, "0.1.0")
        self.statuses: list[Any] = []
        self.messages: list[str] = []
        #: window/showMessage of type Error: what an editor pops up as an error
        self.shown_errors: list[str] = []
        #: window/logMessage of type Error (e.g. "didChange ignored": client and server disagree)
        self.log_errors: list[str] = []
        self.stderr_tail: list[str] = []

        @self.client.feature(methods.STATUS)
        def _status(params: Any) -> None:
            self.statuses.append(params)

        @self.client.feature(types.WINDOW_SHOW_MESSAGE)
        def _show(params: types.ShowMessageParams) -> None:
            self.messages.append(params.message)
            if params.type == types.MessageType.Error:
                self.shown_errors.append(params.message)

        @self.client.feature(types.WINDOW_LOG_MESSAGE)
        def _log(params: types.LogMessageParams) -> None:
            if params.type == types.MessageType.Error:
                self.log_errors.append(params.message)

        @self.client.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
        def _progress_create(params: Any) -> None:
            return None

        @self.client.feature(types.PROGRESS)
        def _progress(params: Any) -> None:
            pass

    async def start(self) -> int:
        """Start ``python -m lsp_server`` over stdio; returns the server's pid."""
        from lsp_server.pygls_internals import client_process

        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
        await self.client.start_io(sys.executable, "-m", "lsp_server", env=env)
        proc = client_process(self.client)
        asyncio.ensure_future(self._drain(proc.stderr))
        return proc.pid

    async def _drain(self, stream: asyncio.StreamReader | None) -> None:
        """Read the server's stderr so a full pipe never blocks it."""
        if stream is None:
            return
        while line := await stream.readline():
            self.stderr_tail = (self.stderr_tail + [line.decode(errors="replace").rstrip()])[-20:]

    async def initialize(self, options: dict[str, Any], capabilities: Any = None) -> None:
        """``initialize`` + ``initialized`` with ``options`` as initializationOptions."""
        types = self.types
        caps = capabilities or types.ClientCapabilities(
            window=types.WindowClientCapabilities(work_done_progress=True))
        await self.client.initialize_async(types.InitializeParams(capabilities=caps,
                                                                  initialization_options=options))
        self.client.initialized(types.InitializedParams())

    async def stats(self, **params: Any) -> dict[str, Any]:
        """``diffill/stats`` as a plain dict."""
        from lsp_server.features.common import plain

        return plain(await self.client.protocol.send_request_async(methods.STATS, params or None))

    def ready(self, key: str, default: Any) -> Any:
        """``key`` ("model", "device") of the last ``ready`` status, else ``default``."""
        ready = [s for s in self.statuses if _get(s, "state") == "ready"]
        return _get(ready[-1], key) if ready else default


def server_options(args: argparse.Namespace, **settings: Any) -> dict[str, Any]:
    """initializationOptions from the common --device/--model/--dtype/--threads options."""
    options = {"device": args.device, **settings}
    pairs = (("model", args.model), ("dtype", getattr(args, "dtype", None)), ("threads", args.threads),
             ("url", getattr(args, "url", None)), ("apiKeyEnv", getattr(args, "api_key_env", None)))
    if getattr(args, "backend", "local") != "local":
        options["backend"] = args.backend
    for key, value in pairs:
        if value:
            options[key] = value
    from lsp_server.cli import remote_settings
    from lsp_server.config import camel

    options.update({camel(name): value for name, value in remote_settings(args).items()})
    return options


async def shutdown(client: Any) -> None:
    """shutdown + exit, then stop the client (best effort: the server may be gone)."""
    try:
        await asyncio.wait_for(client.shutdown_async(None), 10)
        client.exit(None)
    except Exception:  # noqa: BLE001 - best effort
        pass
    await client.stop()


def _get(obj: Any, key: str) -> Any:
    """A status is a dict (custom notification) or an attrs object."""
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)
