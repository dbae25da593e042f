"""Fit the candidates into the token budget, best first; the prompt gets them
most relevant last (``engine.context_format``: nearest the cursor's file)."""
from __future__ import annotations

from collections.abc import Callable, Iterable

from engine.context_format import file_header
from engine.window import CHARS_PER_TOKEN
from lsp_server.context.pieces import Packed, Piece

#: a piece cut to fit keeps at least this many lines, else it is skipped
MIN_LINES = 3
#: a piece estimated at more than PRECUT_OVER times the room left is first cut to
#: PRECUT_TO times it by characters, then counted: counting tokens costs time per
#: character (about 1.2 us per character with the bundled model's tokenizer, whose
#: code runs about 3.4 characters per token, so the cut text still overflows a
#: little and the exact count decides the final cut)
PRECUT_OVER, PRECUT_TO = 1.5, 1.2


def _first_chars(lines: list[str], chars: int) -> list[str]:
    """The first lines holding about ``chars`` characters (at least ``MIN_LINES``)."""
    total = 0
    for i, line in enumerate(lines):
        total += len(line)
        if total > chars:
            return lines[:max(i + 1, MIN_LINES)]
    return lines


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
        lines = body.splitlines(keepends=True)
        if len(body) > PRECUT_OVER * left * CHARS_PER_TOKEN:  # too large: cut by the estimate before counting
            lines = _first_chars(lines, int(PRECUT_TO * left * CHARS_PER_TOKEN))
            body = "".join(lines)
        cost = header + count(body) + 1  # the blank line after each piece
        for _ in range(4):  # too large: keep the share of first lines that should fit, then check
            if cost <= left or len(lines) <= MIN_LINES:
                break
            keep = max(MIN_LINES, min(len(lines) - 1, len(lines) * (left - header) // max(cost - header, 1)))
            lines = lines[:keep]
            body = "".join(lines)
            cost = header + count(body) + 1
        if cost > left:
            continue
        if len(lines) < piece.end_line - piece.start_line:
            piece = Piece(piece.uri, piece.path, piece.start_line, piece.start_line + len(lines), body,
                          piece.reason + " (cut)", piece.score)
        chosen.append(piece.with_tokens(cost))
        left -= cost
    used = budget - left if chosen else 0
    return Packed(tuple(sorted(chosen, key=lambda p: p.score)), used, budget, current_path)
