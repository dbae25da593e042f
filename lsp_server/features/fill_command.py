"""`workspace/executeCommand` `diffill.fillInTheMiddle`.

Streams drafts, then applies the middle with `workspace/applyEdit` against
the document version the fill was computed for.  If the user edited the
document meanwhile nothing is applied and the user is told: newer text is
never overwritten.  The edit is also versioned (``documentChanges``) so a
client that receives it after a late keystroke refuses it too.  Fills on one
document do not cancel each other; their edits go one at a time, each moved
past the ones applied before it (``lsp_server/fill_edits.py``).
"""
from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams

from lsp_server.config import Multiline
from lsp_server.documents import Document
from lsp_server.documents.positions import position_at
from lsp_server.features.common import hole_at, hole_over, plain
from lsp_server.methods import FILL_COMMAND

if TYPE_CHECKING:
    from lsp_server.server import DiffillServer


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
        if not outcome.text:
            result["reason"] = "the model produced nothing to insert"
            return result
        edits = server.fill_edits
        async with edits.lock(doc.uri):  # one fill edit at a time per document
            await edits.settle(doc.uri, lambda: server.documents.current(doc.uri))
            current = server.documents.current(doc.uri)
            # the text too: a document closed and reopened may restart its version numbers
            where = None if current is None else edits.rebase(doc.uri, doc, hole.start, hole.end, current)
            if current is None or not isinstance(where, tuple):
                now = "closed" if current is None else f"now at version {current.version}"
                result["reason"] = where if isinstance(where, str) else \
                    f"document changed (computed for version {doc.version}, {now})"
                server.show_message(f"diffill: {result['reason']}; the fill was not applied.",
                                    types.MessageType.Warning)
                return result
            start, end = where
            applied, reason = await _apply(server, current, start, end, outcome.text)
            if applied:
                edits.record(doc.uri, current, start, end, outcome.text)
        result["applied"] = applied
        if reason:
            result["reason"] = reason
        return result


async def _apply(server: DiffillServer, doc: Document, start: int, end: int, text: str) -> tuple[bool, str | None]:
    """Send the edit and wait (``applyEditTimeoutMs``) for the editor's answer.

    An error answer or no answer in time is a refusal with a human reason, never
    the command's own error; an answer that comes later is still recorded.
    """
    encoding = server.documents.encoding
    a = position_at(doc.text, doc.starts, start, encoding)
    b = position_at(doc.text, doc.starts, end, encoding)
    text_edit = types.TextEdit(
        range=types.Range(start=types.Position(a.line, a.character), end=types.Position(b.line, b.character)),
        new_text=text,
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
    stats = server.stats
    msg_id = f"diffill-edit-{uuid.uuid4().hex[:12]}"
    future = server.protocol.send_request(
        types.WORKSPACE_APPLY_EDIT, types.ApplyWorkspaceEditParams(edit=edit, label="diffill: fill in the middle"),
        msg_id=msg_id)
    timeout_s = server.settings.apply_edit_timeout_ms / 1000.0
    try:
        response = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), timeout_s)
    except JsonRpcException as exc:
        stats.edits_refused += 1
        return False, f"the editor answered workspace/applyEdit with an error: {exc.message} ({exc.code})"
    except (TimeoutError, asyncio.CancelledError) as exc:
        # no answer yet (or the fill was cancelled): keep listening, bounded
        stats.edits_unanswered += 1
        server.late_answers.track(msg_id, future, lambda answer: _late(server, doc.uri, answer))
        if isinstance(exc, asyncio.CancelledError):
            raise
        message = (f"the editor did not answer workspace/applyEdit within {timeout_s:g} s "
                   "(setting applyEditTimeoutMs); if it applies the edit later, diffill/status says so")
        server.show_message(f"diffill: {message}", types.MessageType.Warning)
        return False, message
    if response and response.applied:
        stats.edits_applied += 1
        return True, None
    stats.edits_refused += 1
    return False, (response.failure_reason if response else None) or "the client refused the edit"


def _late(server: DiffillServer, uri: str, answer: Any) -> None:
    """The editor answered an applyEdit the fill had stopped waiting for."""
    applied = not isinstance(answer, BaseException) and bool(answer and answer.applied)
    server.stats.late_answer(applied)
    if applied:
        message = f"a fill edit to {uri} was applied late (after the fill reported it as not applied)"
        server.send_status("ready", message)
        server.log_message(f"diffill: {message}", types.MessageType.Info)
