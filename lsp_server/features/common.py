"""Turning request params into a ``Hole``, with LSP errors for bad params."""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pygls.exceptions import JsonRpcInvalidParams

from lsp_server.documents import Document, PositionError, RefusedDocumentError, UnknownDocumentError
from lsp_server.hole import Hole, LspPosition

if TYPE_CHECKING:
    from lsp_server.server import DiffillServer


def document(server: DiffillServer, uri: str) -> Document:
    try:
        return server.documents.get(uri)
    except RefusedDocumentError as exc:
        raise JsonRpcInvalidParams(str(exc)) from None
    except UnknownDocumentError as exc:
        raise JsonRpcInvalidParams(f"{exc} (open it with textDocument/didOpen first)") from None


def offset(server: DiffillServer, doc: Document, line: Any, character: Any) -> int:
    if not _is_int(line) or not _is_int(character):
        raise JsonRpcInvalidParams(f"position must have integer line/character, got {line!r}:{character!r}")
    try:
        return doc.offset(line, character, server.documents.encoding, strict=True)
    except PositionError as exc:
        raise JsonRpcInvalidParams(f"invalid position: {exc}") from None


def hole_at(server: DiffillServer, uri: str, line: int, character: int) -> Hole:
    doc = document(server, uri)
    at = offset(server, doc, line, character)
    return _in_notebook(server, Hole(doc, at, at, {"start": LspPosition(line=line, character=character),
                                                   "end": LspPosition(line=line, character=character)}))


def hole_over(server: DiffillServer, uri: str, start: dict, end: dict) -> Hole:
    doc = document(server, uri)
    a = offset(server, doc, start.get("line"), start.get("character"))
    b = offset(server, doc, end.get("line"), end.get("character"))
    if b < a:
        raise JsonRpcInvalidParams("range end is before its start")
    return _in_notebook(server, Hole(doc, a, b, {"start": {"line": start["line"], "character": start["character"]},
                                                 "end": {"line": end["line"], "character": end["character"]}}))


def _in_notebook(server: DiffillServer, hole: Hole) -> Hole:
    """A hole in a notebook cell also sees the code cells above and below."""
    cells = server.notebooks.cell_context(hole.doc.uri)
    return hole if cells is None else replace(hole, before=cells.before, after=cells.after)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def plain(value: Any) -> Any:
    """Undo pygls' namedtuple wrapping of untyped (custom-method) params."""
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value
