"""`workspace/executeCommand` `diffill.fillInTheMiddle`.

Streams drafts, then applies the middle with `workspace/applyEdit` against
the document version the fill was computed for.  If the user edited the
document meanwhile nothing is applied and the user is told: newer text is
never overwritten.  The edit is also versioned (``documentChanges``) so a
client that receives it after a late keystroke refuses it too.
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from lsp_server.config import Multiline
from lsp_server.features.common import hole_at, hole_over, plain
from lsp_server.methods import FILL_COMMAND

if TYPE_CHECKING:
    from lsp_server.server import DiffillServer

#: how long to wait for the client to answer workspace/applyEdit
APPLY_EDIT_TIMEOUT_S = 30.0


def _parse(server: DiffillServer, args: tuple[Any, ...]):
    args = tuple(plain(a) for a in args)
    if len(args) != 1 or not isinstance(args[0], dict) or not isinstance(args[0].get("uri"), str):
        raise JsonRpcInvalidParams(
            f"{FILL_COMMAND} takes one argument {{uri, position}} or {{uri, range}}"
        )
    arg = args[0]
    if isinstance(arg.get("range"), dict):
        r = arg["range"]
        if not isinstance(r.get("start"), dict) or not isinstance(r.get("end"), dict):
            raise JsonRpcInvalidParams("range must have start and end positions")
        return hole_over(server, arg["uri"], r["start"], r["end"])
    if isinstance(arg.get("position"), dict):
        p = arg["position"]
        return hole_at(server, arg["uri"], p.get("line"), p.get("character"))
    raise JsonRpcInvalidParams(f"{FILL_COMMAND} needs a position or a range")


def register(server: DiffillServer) -> None:
    @server.command(FILL_COMMAND)
    async def fill_in_the_middle(*args: Any) -> dict[str, Any]:
        hole = _parse(server, args)
        doc = hole.doc
        multiline: Multiline | None = None
        if server.settings.multiline == "auto" and "\n" in doc.text[hole.start:hole.end]:
            multiline = "always"
        outcome = await server.pipeline.complete(
            hole, kind="command", debounce=False, drafts=server.settings.drafts.command,
            multiline=multiline,
        )
        result: dict[str, Any] = {"applied": False, "text": "", "version": doc.version}
        if outcome is None:
            result["reason"] = "cancelled or failed (see diffill/status)"
            return result
        result["text"] = outcome.text
        current = server.documents.current(doc.uri)
        # the text too: a document closed and reopened may restart its version numbers
        if current is None or current.version != doc.version or current.text != doc.text:
            now = "closed" if current is None else f"now at version {current.version}"
            result["reason"] = f"document changed (computed for version {doc.version}, {now})"
            server.show_message(
                "diffill: the document changed while filling; the edit was not applied.",
                types.MessageType.Warning,
            )
            return result
        if not outcome.text:
            result["reason"] = "the model produced nothing to insert"
            return result
        r = hole.range
        text_edit = types.TextEdit(
            range=types.Range(
                start=types.Position(r["start"]["line"], r["start"]["character"]),
                end=types.Position(r["end"]["line"], r["end"]["character"]),
            ),
            new_text=outcome.text,
        )
        caps = server.client_capabilities
        versioned = bool(caps and caps.workspace and caps.workspace.workspace_edit
                         and caps.workspace.workspace_edit.document_changes)
        if versioned:
            edit = types.WorkspaceEdit(document_changes=[types.TextDocumentEdit(
                text_document=types.OptionalVersionedTextDocumentIdentifier(uri=doc.uri, version=doc.version),
                edits=[text_edit],
            )])
        else:
            edit = types.WorkspaceEdit(changes={doc.uri: [text_edit]})
        response = await asyncio.wait_for(server.workspace_apply_edit_async(
            types.ApplyWorkspaceEditParams(edit=edit, label="diffill: fill in the middle")
        ), APPLY_EDIT_TIMEOUT_S)
        result["applied"] = bool(response and response.applied)
        if not result["applied"]:
            reason = response.failure_reason if response else None
            result["reason"] = reason or "the client refused the edit"
        return result
