"""Source 2: a ring buffer of recently viewed and edited chunks (after llama.vim).

Chunks of ``CHUNK_LINES`` lines around where the user edited or asked for a
completion, newest last; a new chunk replaces older ones of the same document
that it overlaps by half or more, and the oldest fall out past ``capacity``.
The text is copied when noted, so a chunk shows what the user saw.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from lsp_server.context.pieces import Piece
from lsp_server.documents.positions import line_starts

CAPACITY = 16
CHUNK_LINES = 64
#: a chunk from the recent buffer scores below any definition, newer ones higher
BASE_SCORE = 1.0


@dataclass(frozen=True)
class Chunk:
    uri: str
    path: str
    start: int
    end: int
    text: str


class RecentChunks:
    """The ring buffer; noted from the event loop, read by requests."""

    def __init__(self, capacity: int = CAPACITY, lines: int = CHUNK_LINES) -> None:
        self.lines = lines
        self._chunks: deque[Chunk] = deque(maxlen=capacity)

    def note(self, uri: str, path: str, text: str, line: int, starts: list[int] | None = None) -> None:
        """Remember the chunk of ``text`` around ``line``; ``starts`` (the line
        offsets a Document already holds) spares splitting the whole text per keystroke."""
        if not text:
            return
        if starts is None:
            starts = line_starts(text)
        # lines as splitlines() counts them: no empty line after a final line break
        count = len(starts) - 1 if starts[-1] == len(text) else len(starts)
        start = max(0, min(line - self.lines // 2, count - self.lines))
        end = min(count, start + self.lines)
        body = text[starts[start]:starts[end] if end < len(starts) else len(text)]
        if not body.strip():
            return
        kept = [c for c in self._chunks
                if not (c.uri == uri and min(c.end, end) - max(c.start, start) >= (end - start) // 2)]
        self._chunks.clear()
        self._chunks.extend(kept)
        self._chunks.append(Chunk(uri, path, start, end, body))

    def forget(self, uri: str) -> None:
        kept = [c for c in self._chunks if c.uri != uri]
        self._chunks.clear()
        self._chunks.extend(kept)

    def candidates(self, current_uri: str) -> list[Piece]:
        """Chunks of other documents, newer ones scoring higher."""
        chunks = list(self._chunks)
        n = len(chunks)
        return [Piece(c.uri, c.path, c.start, c.end, c.text, "recently viewed or edited", BASE_SCORE + i / max(n, 1))
                for i, c in enumerate(chunks) if c.uri != current_uri]

    def __len__(self) -> int:
        return len(self._chunks)
