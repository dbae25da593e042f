"""The server's own copy of open documents (incremental sync).

Kept separately from pygls' workspace because pygls mutates incoming change
ranges while clamping them and splits lines on characters LSP does not treat
as line breaks.  Each ``Document`` is immutable; an edit replaces it, so a
request can hold a snapshot (text + version) while the user keeps typing.
"""
from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field

from lsp_server.documents.positions import UTF16, Pos, PositionError, line_starts, offset_at
from lsp_server.documents.uris import shown, uri_problem

#: refused URIs remembered at most (until closed; the oldest are forgotten first)
REFUSED_KEPT = 1024


class UnknownDocumentError(KeyError):
    """A request named a document the client never opened."""

    def __str__(self) -> str:
        return f"unknown document: {shown(str(self.args[0]))}"


class RefusedDocumentError(UnknownDocumentError):
    """A document whose URI the server cannot keep (``uris.uri_problem``): refused
    at ``didOpen``, and every later message about it is answered with the reason."""

    def __init__(self, uri: str, reason: str, first: bool) -> None:
        super().__init__(uri, reason)
        self.uri, self.reason = uri, reason
        #: whether this is the didOpen that refused it (the user is told once)
        self.first = first

    def __str__(self) -> str:
        return f"document {shown(self.uri)} was refused: {self.reason}"


@dataclass(frozen=True)
class Document:
    """One version of an open text document."""

    uri: str
    text: str
    version: int
    language_id: str | None = None
    _starts: list[int] = field(default_factory=list, repr=False, compare=False)

    @property
    def starts(self) -> list[int]:
        if not self._starts:
            self._starts.extend(line_starts(self.text))
        return self._starts

    def offset(self, line: int, character: int, encoding: str = UTF16, *, strict: bool = True) -> int:
        return offset_at(self.text, self.starts, Pos(line, character), encoding, strict=strict)


@dataclass(frozen=True)
class Change:
    """A content change: ``range`` None means the full text is replaced."""

    text: str
    range: tuple[Pos, Pos] | None = None


def apply_changes(doc: Document, changes: list[Change], version: int, encoding: str) -> Document:
    """Apply ``changes`` in order (each against the result of the previous one)."""
    current = doc
    for change in changes:
        if change.range is None:
            current = Document(doc.uri, change.text, version, doc.language_id)
            continue
        start_pos, end_pos = change.range
        start = current.offset(start_pos.line, start_pos.character, encoding, strict=False)
        end = current.offset(end_pos.line, end_pos.character, encoding, strict=False)
        if end < start:
            raise PositionError(f"change range ends before it starts: {change.range}")
        text = current.text[:start] + change.text + current.text[end:]
        current = Document(doc.uri, text, version, doc.language_id, _shifted_starts(current, start, end, change.text))
    return current if current.version == version else Document(doc.uri, current.text, version, doc.language_id)


def _shifted_starts(old: Document, start: int, end: int, new_text: str) -> list[int]:
    """The edited text's line starts from the old ones: a keystroke in a long
    file moves the starts after it instead of scanning the whole text again.
    Empty (computed when first needed) where a ``\r`` could join or split a line break."""
    starts = old.starts
    if "\r" in new_text or "\r" in old.text:
        return []
    first = bisect_right(starts, start)  # these lines begin at or before the edit: unchanged
    last = bisect_right(starts, end)  # these begin after it: shifted
    delta = len(new_text) - (end - start)
    inserted = [start + i + 1 for i, ch in enumerate(new_text) if ch == "\n"] if "\n" in new_text else []
    return starts[:first] + inserted + [s + delta for s in starts[last:]]


#: the open documents as they were when the current request was dispatched
#: (set per request by the protocol; asyncio tasks inherit it)
DISPATCH_SNAPSHOT: ContextVar[Mapping[str, Document] | None] = ContextVar("diffill_docs", default=None)


class DocumentStore:
    """Open documents by URI.

    ``get`` answers from the snapshot taken when the current request was
    dispatched: an async handler starts later, possibly after the client's
    next ``didChange`` was applied, and the request's positions refer to the
    text the client had when it sent the request.
    """

    def __init__(self, encoding: str = UTF16) -> None:
        self.encoding = encoding
        self._docs: dict[str, Document] = {}
        self._refused: dict[str, str] = {}

    def open(self, uri: str, text: str, version: int, language_id: str | None) -> Document:
        """Keep a new document; ``RefusedDocumentError`` for a URI that cannot be kept."""
        reason = self._refused.get(uri)
        if reason is not None:
            raise RefusedDocumentError(uri, reason, first=False)
        reason = uri_problem(uri)
        if reason is not None:
            self._refused[uri] = reason
            if len(self._refused) > REFUSED_KEPT:
                del self._refused[next(iter(self._refused))]
            raise RefusedDocumentError(uri, reason, first=True)
        doc = Document(uri, text, version, language_id)
        self._docs[uri] = doc
        return doc

    def change(self, uri: str, version: int, changes: list[Change]) -> Document:
        doc = self._docs.get(uri)
        if doc is None:
            raise self._unknown(uri)
        new = apply_changes(doc, changes, version, self.encoding)
        self._docs[uri] = new
        return new

    def close(self, uri: str) -> None:
        self._docs.pop(uri, None)
        self._refused.pop(uri, None)

    def get(self, uri: str) -> Document:
        docs = DISPATCH_SNAPSHOT.get()
        try:
            return (self._docs if docs is None else docs)[uri]
        except KeyError:
            raise self._unknown(uri) from None

    def refused(self, uri: str) -> bool:
        """Whether ``uri`` was refused at its ``didOpen`` (and not closed since)."""
        return uri in self._refused

    def _unknown(self, uri: str) -> UnknownDocumentError:
        reason = self._refused.get(uri)
        return UnknownDocumentError(uri) if reason is None else RefusedDocumentError(uri, reason, first=False)

    def current(self, uri: str) -> Document | None:
        """The latest version (ignores the dispatch snapshot)."""
        return self._docs.get(uri)

    def snapshot(self) -> Mapping[str, Document]:
        return dict(self._docs)

    def __contains__(self, uri: str) -> bool:
        return uri in self._docs

    def __len__(self) -> int:
        return len(self._docs)
