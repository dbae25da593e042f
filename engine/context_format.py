"""How text from other files is laid out before the cursor's file in a prompt.

One format, shared by the training recipe (cross-file examples) and by whatever
sends repository context at inference, so that the bundled model sees at
inference exactly what it was trained on::

    # file: pkg/util.py
    <snippet of another file>

    # file: pkg/main.py
    <the cursor's file: prefix, canvas, suffix>
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

from engine.types import ContextPiece, InfillRequest
from engine.window import context_room

HEADER = "# file: {path}\n"


def file_header(path: str) -> str:
    """The line that names a file; newlines in the path are flattened."""
    return HEADER.format(path=path.replace("\n", " ").strip())


def format_context(snippets: Sequence[tuple[str, str]], current_path: str | None = None) -> str:
    """``(path, snippet)`` pieces, most relevant last, then the cursor file's header."""
    parts = [file_header(path) + text.rstrip("\n") + "\n\n" for path, text in snippets if text.strip()]
    if current_path:
        parts.append(file_header(current_path))
    return "".join(parts)


def fit_pieces(pieces: Sequence[ContextPiece], current_path: str | None,
               count: Callable[[str], int], budget: int) -> list[tuple[str, str]]:
    """The ``(path, text)`` pieces whose formatted context fits ``budget`` tokens
    (as ``count`` measures them).

    The server packs pieces to its own count; this is the cut the model's own
    tokenizer (or, for a remote server, the shared estimate) allows.  Least
    relevant pieces (the first) go first; a lone piece still too large keeps
    its first lines (a definition's signature).
    """
    if budget <= 0 or not pieces:
        return []
    kept = [(p.path, p.text) for p in pieces if p.text.strip()]
    while kept:
        if count(format_context(kept, current_path)) <= budget:
            return kept
        if len(kept) > 1:
            kept.pop(0)
            continue
        path, body = kept[0]
        lines = body.splitlines(keepends=True)
        if len(lines) <= 1:
            return []
        kept = [(path, "".join(lines[: len(lines) // 2]))]
    return []


def fit_context(pieces: Sequence[ContextPiece], current_path: str | None,
                count: Callable[[str], int], budget: int) -> str:
    """The formatted context (``format_context``) of ``fit_pieces``; "" when none fits."""
    kept = fit_pieces(pieces, current_path, count, budget)
    return format_context(kept, current_path) if kept else ""


def prompt_context(request: InfillRequest, count: Callable[[str], int], window_tokens: int, canvas: int) -> str:
    """What a backend whose prompt is text puts before the prefix: the request's
    pieces with file-path headers, within the share of its window that leaves
    the cursor's own file its room (``engine.window.context_room``)."""
    if not request.context:
        return ""
    return fit_context(request.context, request.path, count, context_room(window_tokens, canvas))
