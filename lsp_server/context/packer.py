"""Fit the candidates into the token budget, best first; the prompt gets them
most relevant last (``engine.context_format``: nearest the cursor's file)."""
from __future__ import annotations

from collections.abc import Callable, Iterable

from engine.context_format import file_header
from lsp_server.context.pieces import Packed, Piece

#: a piece cut to fit keeps at least this many lines, else it is skipped
MIN_LINES = 3


def pack(candidates: Iterable[Piece], budget: int, count: Callable[[str], int],
         current_path: str | None = None) -> Packed:
    """The best non-overlapping candidates within ``budget`` tokens, headers and
    the cursor file's header included; a piece too large keeps its first lines."""
    left = budget - (count(file_header(current_path)) if current_path else 0)
    chosen: list[Piece] = []
    for piece in sorted(candidates, key=lambda p: -p.score):
        if left <= 0:
            break
        if any(piece.overlaps(c) for c in chosen) or not piece.text.strip():
            continue
        header = count(file_header(piece.path))
        body = piece.text.rstrip("\n") + "\n"
        cost = header + count(body) + 1  # the blank line after each piece
        if cost > left:
            lines = body.splitlines(keepends=True)
            while len(lines) > MIN_LINES and cost > left:
                lines = lines[: max(MIN_LINES, len(lines) * 2 // 3)]
                body = "".join(lines)
                cost = header + count(body) + 1
            if cost > left:
                continue
            piece = Piece(piece.uri, piece.path, piece.start_line, piece.start_line + len(lines), body,
                          piece.reason + " (cut)", piece.score)
        chosen.append(piece.with_tokens(cost))
        left -= cost
    used = budget - left if chosen else 0
    return Packed(tuple(sorted(chosen, key=lambda p: p.score)), used, budget, current_path)
