"""Source 3: snippets of open documents that share the most identifiers with the
code around the cursor (Jaccard similarity of identifier sets, windows of
``WINDOW`` lines every ``STRIDE``).  Each document's windows are computed once
per version and cached, so a request only intersects sets: when a document is
opened or saved (``prepare``, from the sync handlers), else on the first
request after an edit; then the identifiers of its unchanged lines come from a
cache keyed by line text, so a new version costs set unions, not regex scans.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from lsp_server.context.identifiers import COMMON, IDENT, lines_around
from lsp_server.context.pieces import Piece

WINDOW, STRIDE = 24, 12
#: lines of a document looked at most (a huge generated file costs no more than this)
MAX_LINES = 20_000
#: below this similarity a window is noise
MIN_SCORE = 0.12
#: snippets proposed per request
TOP = 3
#: similar snippets score between recent chunks and definitions
BASE_SCORE = 3.0


@dataclass(frozen=True)
class OpenText:
    """An open document the sources may use."""

    uri: str
    path: str
    version: int
    text: str


#: lines whose identifiers are remembered (by text; a new version mostly repeats them)
LINE_CACHE = 200_000
_EMPTY: frozenset[str] = frozenset()


def _ids(text: str) -> frozenset[str]:
    return frozenset(IDENT.findall(text)) - COMMON


class SimilarSnippets:
    """Windows of open documents, with their identifier sets, by (uri, version)."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[int, list[tuple[int, int, frozenset[str]]], list[str]]] = {}
        self._line_ids: dict[str, frozenset[str]] = {}

    def prepare(self, doc: OpenText) -> None:
        """Compute ``doc``'s windows now (it was opened or saved)."""
        self._windows(doc)

    def _line(self, line: str) -> frozenset[str]:
        ids = self._line_ids.get(line)
        if ids is None:
            if len(self._line_ids) >= LINE_CACHE:
                self._line_ids.clear()
            ids = self._line_ids[line] = _ids(line) if IDENT.search(line) else _EMPTY
        return ids

    def _windows(self, doc: OpenText) -> tuple[list[tuple[int, int, frozenset[str]]], list[str]]:
        hit = self._cache.get(doc.uri)
        if hit is not None and hit[0] == doc.version:
            return hit[1], hit[2]
        lines = doc.text.splitlines(keepends=True)[:MAX_LINES]
        per_line = [self._line(line) for line in lines]
        windows = []
        for start in range(0, max(1, len(lines) - WINDOW + STRIDE), STRIDE):
            end = min(len(lines), start + WINDOW)
            ids = _EMPTY.union(*per_line[start:end])
            if ids:
                windows.append((start, end, ids))
        self._cache[doc.uri] = (doc.version, windows, lines)
        return windows, lines

    def forget(self, uri: str) -> None:
        self._cache.pop(uri, None)

    def candidates(self, all_lines: list[str], line: int, current_uri: str,
                   docs: Iterable[OpenText]) -> list[Piece]:
        """The windows of other open documents most like ``all_lines`` around ``line``."""
        start, end = lines_around(all_lines, line, WINDOW // 2 + 8, WINDOW // 4)
        query = _ids("\n".join(all_lines[start:end]))
        if not query:
            return []
        scored: list[tuple[float, OpenText, int, int, list[str]]] = []
        for doc in docs:
            if doc.uri == current_uri:
                continue
            windows, lines = self._windows(doc)
            for w_start, w_end, ids in windows:
                score = len(query & ids) / len(query | ids)
                if score >= MIN_SCORE:
                    scored.append((score, doc, w_start, w_end, lines))
        scored.sort(key=lambda s: -s[0])
        return [Piece(doc.uri, doc.path, s, e, "".join(lines[s:e]), f"similar code ({score:.2f})",
                      BASE_SCORE + score)
                for score, doc, s, e, lines in scored[:TOP]]
