"""initialize / initialized / configuration / shutdown.

The lifecycle rules themselves (-32002 before ``initialize``, one
``initialize`` only, ``exit`` codes) are enforced in ``DiffillProtocol``;
``initialize`` starts watching the client's ``processId``.

Settings come from ``initializationOptions`` and later from
``workspace/didChangeConfiguration``; the model starts loading in the
background as soon as the client says ``initialized`` so the first
completion does not pay for it (requests wait for the load).
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from lsp_server import parent_watch
from lsp_server.documents.positions import ENCODINGS, UTF16
from lsp_server.features.common import plain

if TYPE_CHECKING:
    from lsp_server.server import DiffillServer


def register(server: DiffillServer) -> None:
    @server.feature(types.INITIALIZE)
    def initialize(params: types.InitializeParams) -> None:
        server.protocol.initialized = True  # requests are served from now on; initialize only once
        encoding = server.workspace.position_encoding
        value = getattr(encoding, "value", encoding)
        server.documents.encoding = value if value in ENCODINGS else UTF16
        server.update_settings(plain(params.initialization_options), source="initializationOptions")
        if params.process_id is not None:
            process = parent_watch.parent_process(params.process_id)
            if process is not None:  # exit (code 1: no shutdown) when the client dies
                server.parent_watch = asyncio.ensure_future(
                    parent_watch.watch(process, lambda: server.request_exit(1)))

    @server.feature(types.INITIALIZED)
    def initialized(params: types.InitializedParams) -> None:
        server.engine_host.ensure(server.settings)
        server.start_index()
        from lsp_server.features.context import watch_files

        asyncio.ensure_future(watch_files(server))

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def did_change_configuration(params: types.DidChangeConfigurationParams) -> None:
        raw: Any = plain(params.settings)
        if isinstance(raw, dict) and "diffill" in raw:
            raw = raw["diffill"]
        if raw is None:
            return
        server.update_settings(raw, source="didChangeConfiguration")

    @server.feature(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
    def did_change_workspace_folders(params: types.DidChangeWorkspaceFoldersParams) -> None:
        server.update_settings({}, source="workspace folders")  # trusted models are checked again
        server.start_index()  # context reads only the folders open now

    @server.feature(types.SHUTDOWN)
    def shutdown(params: None) -> None:
        server.stop_background_work()
