"""Repository context: the `diffill/context` request and the events that keep the
symbol index current (`didSave`, `workspace/didChangeWatchedFiles`).

`diffill/context` (client -> server), params ``{"textDocument": {"uri"},
"position"}``: what the next completion at that position would send the model
from other files, so that editors can show it and users see why a suggestion
was made (docs/PROTOCOL.md).
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from lsp_server.context.pieces import Packed
from lsp_server.documents.positions import position_at
from lsp_server.features.common import document, offset, plain
from lsp_server.methods import CONTEXT

if TYPE_CHECKING:
    from lsp_server.server import DiffillServer

log = logging.getLogger(__name__)
WATCHER_ID = "diffill-context-files"


def to_json(packed: Packed, enabled: bool, index: dict[str, Any]) -> dict[str, Any]:
    return {
        "enabled": enabled,
        "pieces": [{"uri": p.uri, "path": p.path,
                    "range": {"start": {"line": p.start_line, "character": 0},
                              "end": {"line": p.end_line, "character": 0}},
                    "text": p.text, "tokens": p.tokens, "reason": p.reason} for p in packed.pieces],
        "tokensUsed": packed.used,
        "tokenBudget": packed.budget,
        "index": index,
    }


def cells_json(server: DiffillServer, uri: str) -> dict[str, list[dict[str, Any]]] | None:
    """For a notebook cell, the other cells the model sees before and after it (None otherwise)."""
    cells = server.notebooks.cell_context(uri)
    if cells is None:
        return None

    def ref(cell_uri: str) -> dict[str, Any]:
        doc = server.documents.get(cell_uri)
        end = position_at(doc.text, doc.starts, len(doc.text), server.documents.encoding)
        return {"uri": cell_uri, "range": {"start": {"line": 0, "character": 0},
                                           "end": {"line": end.line, "character": end.character}}}

    return {"before": [ref(u) for u in cells.cells_before], "after": [ref(u) for u in cells.cells_after]}


def register(server: DiffillServer) -> None:
    @server.feature(CONTEXT)
    def context(params: Any) -> dict[str, Any]:
        raw = plain(params)
        if not isinstance(raw, dict) or not isinstance(raw.get("textDocument"), dict) \
                or not isinstance(raw.get("position"), dict):
            raise JsonRpcInvalidParams("expected {textDocument: {uri}, position: {line, character}}")
        doc = document(server, str(raw["textDocument"].get("uri")))
        at = offset(server, doc, raw["position"].get("line"), raw["position"].get("character"))
        packed = server.context_for(doc, at, note=False)
        out = to_json(packed, server.settings.context_enabled, server.context.describe())
        out["cells"] = cells_json(server, doc.uri)
        return out

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(params: types.DidSaveTextDocumentParams) -> None:
        doc = server.documents.current(params.text_document.uri)
        if doc is not None and server.settings.context_enabled:
            server.context.document_changed(doc, None)

    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def did_change_watched_files(params: types.DidChangeWatchedFilesParams) -> None:
        if not server.settings.context_enabled:
            return
        for change in params.changes:
            server.context.file_changed(change.uri, change.type == types.FileChangeType.Deleted,
                                        change.uri in server.documents)


async def watch_files(server: DiffillServer) -> None:
    """Ask the client to report file changes on disk (when it can register watchers)."""
    caps = server.client_capabilities
    watched = caps and caps.workspace and caps.workspace.did_change_watched_files
    if not (watched and watched.dynamic_registration):
        return
    options = types.DidChangeWatchedFilesRegistrationOptions(watchers=[types.FileSystemWatcher(glob_pattern="**/*")])
    try:
        await server.client_register_capability_async(types.RegistrationParams(registrations=[
            types.Registration(id=WATCHER_ID, method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
                               register_options=options)]))
    except Exception as exc:  # noqa: BLE001 - watching is optional: edits and saves still update the index
        log.warning("file watcher registration refused: %s", exc)
