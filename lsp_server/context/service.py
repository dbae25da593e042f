"""The one interface the server and the pipeline use for repository context.

It owns the rules, the symbol index (and its background indexer), the recent
chunks and the similar-snippet cache; it hears about documents from the
server's sync handlers, and ``gather`` turns a cursor into packed pieces.
``gather`` runs on the event loop, so every source works from cached state:
the index, windows computed once per document version, a small cache of
files' lines.
"""
from __future__ import annotations

import bisect
import functools
import os
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING

from pygls.uris import from_fs_path

from engine.window import CHARS_PER_TOKEN, DEFAULT_CONTEXT_TOKENS, context_room
from lsp_server.config import Settings
from lsp_server.context import definitions
from lsp_server.context.files import read_source, read_span
from lsp_server.context.index import TYPING_QUIET_S, Definition, Indexer, ProgressFn, SymbolIndex
from lsp_server.context.pieces import Packed, Piece
from lsp_server.context.privacy import Rules
from lsp_server.context.recent import RecentChunks
from lsp_server.context.similar import OpenText, SimilarSnippets
from lsp_server.documents.context import scalar_text
from lsp_server.documents.store import Document
from lsp_server.documents.uris import fs_path

if TYPE_CHECKING:
    from engine import Engine

#: lines of the cursor's file the sources look at
LINES_BEFORE, LINES_AFTER = 48, 16
#: files whose lines are kept for definitions, least recently used dropped
FILE_CACHE = 64
#: bytes of a definition read at most (``definitions.MAX_LINES`` lines of long lines)
SPAN_BYTES = 8192
#: token counts of texts kept (pieces and headers recur from request to request)
COUNT_CACHE = 2048

TokenCounter = Callable[[str], int]


def estimate_tokens(text: str) -> int:
    """Tokens by the one characters-per-token estimate (no model loaded)."""
    return -(-len(text) // CHARS_PER_TOKEN)


@functools.lru_cache(maxsize=4096)
def path_of(uri: str) -> str | None:
    """The local path of a ``file:`` URI (None for other schemes, and for a URI that
    cannot be a path: a lone surrogate or a NUL in it); remembered, requests ask
    about the same open documents again and again."""
    return fs_path(uri)


@functools.lru_cache(maxsize=4096)
def uri_of(path: str) -> str:
    """The ``file:`` URI of a path, remembered (definitions come from the same files)."""
    return from_fs_path(path) or path


@functools.lru_cache(maxsize=4096)
def real_path(path: str) -> str:
    """``os.path.realpath``, remembered (it costs a ``stat`` per path component)."""
    return os.path.realpath(path)


class ContextService:
    """Repository context for one server."""

    def __init__(self) -> None:
        self.index = SymbolIndex()
        self.indexer = Indexer(self.index)
        self.recent = RecentChunks()
        self.similar = SimilarSnippets()
        self.rules = Rules([])
        self._files: OrderedDict[tuple[str, int, int], list[str]] = OrderedDict()
        self._may_read: dict[str, bool] = {}
        self._counter: tuple[int, TokenCounter] | None = None

    # -- workspace -----------------------------------------------------------
    def start(self, folders: Sequence[str], exclude: Iterable[str], docs: Callable[[], Mapping[str, Document]],
              progress: ProgressFn | None = None) -> Future[int]:
        """(Re)build the index for these folders and rules in the background."""
        self.rules = Rules(folders, exclude)
        self._files.clear()
        self._may_read.clear()

        def open_texts() -> dict[str, str]:
            out = {}
            for doc in docs().values():
                path = path_of(doc.uri)
                if path:
                    out[real_path(path)] = doc.text
            return out

        return self.indexer.rebuild(self.rules, open_texts, progress)

    def document_changed(self, doc: Document, line: int | None) -> None:
        """An open document's text changed (or it was opened): re-index it, and
        note the chunk around the edited ``line`` as recently seen."""
        path = path_of(doc.uri)
        if path is None or not self.rules.may_use_open(path):
            return
        real = real_path(path)
        self.indexer.update(real, lambda: doc.text, doc.language_id, 0.0 if line is None else TYPING_QUIET_S)
        if line is None:  # opened or saved: its identifier windows now, not in a later request
            self.similar.prepare(OpenText(doc.uri, self.rules.shown_path(path), doc.version, doc.text))
        else:
            self.recent.note(doc.uri, self.rules.shown_path(path), doc.text, line, doc.starts)

    def document_closed(self, uri: str) -> None:
        """The file on disk is what counts again."""
        self.similar.forget(uri)
        path = path_of(uri)
        if path is not None:
            self.indexer.update(real_path(path), lambda: None)

    def file_changed(self, uri: str, deleted: bool, is_open: bool) -> None:
        """A watched file was created, changed or deleted on disk."""
        path = path_of(uri)
        if path is None or is_open:
            return
        real = real_path(path)
        if deleted:
            self.indexer.remove(real)
        else:
            self.indexer.update(real, lambda: None)

    def shutdown(self) -> None:
        self.indexer.shutdown()

    def wait_stopped(self, timeout_s: float) -> bool:
        """After ``shutdown``: whether the index's worker process has ended within ``timeout_s``."""
        return self.indexer.worker.wait_stopped(timeout_s)

    # -- one request ------------------------------------------------------------
    def budget(self, max_tokens: int, window_tokens: int, canvas: int) -> int:
        """Tokens the pieces may use: the setting, within the share of the model's
        window that leaves the cursor's own file its room."""
        return max(0, min(max_tokens, context_room(window_tokens, canvas)))

    def for_settings(self, doc: Document, offset: int, docs: Mapping[str, Document], settings: Settings,
                     engine: Engine | None, *, note: bool = True) -> Packed:
        """``gather`` with the budget and token counts of these settings and this
        engine (estimates while no model is loaded)."""
        if not settings.context_enabled:
            return Packed((), 0, 0)
        window = settings.context_tokens or (engine.context_tokens if engine else DEFAULT_CONTEXT_TOKENS)
        budget = self.budget(settings.context_max_tokens, window, settings.max_new_tokens)
        return self.gather(doc, offset, docs, budget, self._count_with(engine), note=note)

    def _count_with(self, engine: Engine | None) -> TokenCounter:
        if engine is None:
            return estimate_tokens
        if self._counter is None or self._counter[0] != id(engine):
            # the same chunks and headers come back request after request: count each once
            exact = engine.token_counter()
            if exact is not None:  # documents may hold lone surrogates: count what the engine will get
                tokens, exact = exact, lambda text: tokens(scalar_text(text))
            self._counter = (id(engine), functools.lru_cache(maxsize=COUNT_CACHE)(exact) if exact else estimate_tokens)
        return self._counter[1]

    def gather(self, doc: Document, offset: int, docs: Mapping[str, Document], budget: int,
               count: TokenCounter = estimate_tokens, *, note: bool = True) -> Packed:
        """The pieces for a cursor at ``offset`` of ``doc``, packed into ``budget``."""
        from lsp_server.context.packer import pack

        path = path_of(doc.uri)
        real = real_path(path) if path else None
        if budget <= 0 or (path is not None and not self.rules.may_use_open(path)):
            return Packed((), 0, max(budget, 0))
        line = bisect.bisect_right(doc.starts, offset) - 1
        lines, rel = _lines_near(doc, line)
        head = doc.text[: doc.starts[min(400, len(doc.starts) - 1)]] if len(doc.starts) > 1 else doc.text
        by_path = {real_path(p): d for d in docs.values() if (p := path_of(d.uri))}
        opened = [OpenText(d.uri, self.rules.shown_path(p), d.version, d.text)
                  for p, d in by_path.items() if d.uri != doc.uri and self.rules.may_use_open(p)]
        found: list[Piece] = definitions.candidates(
            lines, rel, head, real, self.index, lambda d: self._definition(d, by_path), self.rules.shown_path,
            lambda p: by_path[p].uri if p in by_path else uri_of(p), limit=2 * budget)
        found += self.similar.candidates(lines, rel, doc.uri, opened)
        found += [p for p in self.recent.candidates(doc.uri) if self._allowed_uri(p.uri)]
        packed = pack(found, budget, count, self.rules.shown_path(path) if path else None)
        if note and path is not None:
            self.recent.note(doc.uri, self.rules.shown_path(path), doc.text, line, doc.starts)
        return packed

    def _allowed_uri(self, uri: str) -> bool:
        path = path_of(uri)
        return path is None or self.rules.may_use_open(path)

    def _definition(self, d: Definition, opened: Mapping[str, Document]) -> list[str] | None:
        """A definition's first lines (at most ``definitions.MAX_LINES``): from the
        open document, else just its bytes of the file when the file is still the
        version indexed, else from the whole file."""
        most = min(d.end, d.start + definitions.MAX_LINES)
        doc = opened.get(d.path)
        if doc is not None:
            starts = doc.starts
            if d.start >= len(starts):
                return None
            end = starts[most] if most < len(starts) else len(doc.text)
            return doc.text[starts[d.start]:end].splitlines(keepends=True)
        if d.stamp is not None and d.first_byte >= 0 and self._readable(d.path):
            text = read_span(d.path, d.stamp, d.first_byte, d.end_byte, SPAN_BYTES)
            if text is not None:
                return text.splitlines(keepends=True)[: most - d.start]
        lines = self._lines(d.path)
        return lines[d.start:most] if lines is not None else None

    def _readable(self, path: str) -> bool:
        """``rules.may_read``, remembered per path until the rules change."""
        known = self._may_read.get(path)
        if known is None:
            if len(self._may_read) > 50_000:
                self._may_read.clear()
            known = self._may_read[path] = self.rules.may_read(path)
        return known

    def _lines(self, path: str) -> list[str] | None:
        """A file as lines (if the rules allow it), cached by modification time."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        key = (path, st.st_mtime_ns, st.st_size)
        lines = self._files.get(key)
        if lines is None:
            text = read_source(path, self.rules)
            if text is None:
                return None
            lines = text.splitlines(keepends=True)
            self._files[key] = lines
            if len(self._files) > FILE_CACHE:
                self._files.popitem(last=False)
        else:
            self._files.move_to_end(key)
        return lines

    def describe(self) -> dict[str, object]:
        return {**self.index.stats(), "ready": self.indexer.ready, "recentChunks": len(self.recent)}


def _lines_near(doc: Document, line: int) -> tuple[list[str], int]:
    """The lines around ``line`` (without splitting the whole document) and the
    cursor's index among them."""
    starts = doc.starts
    first = max(0, line - LINES_BEFORE)
    last = min(len(starts), line + LINES_AFTER + 1)
    end = starts[last] if last < len(starts) else len(doc.text)
    return doc.text[starts[first]:end].splitlines(), line - first
