"""Source 1: definitions (from the symbol index) of the names used near the cursor.

A name scores by how close to the cursor it is used (the cursor's own line
counts most) and twice when the file imports it.  Names the cursor's file
defines itself are left out (the model sees that file already), and so are
names defined in many files (``get``, ``run``): ambiguous, unless one
definition sits in the cursor's directory or in a module the file imports.
"""
from __future__ import annotations

import os
from collections.abc import Callable

from engine.window import CHARS_PER_TOKEN
from lsp_server.context.identifiers import COMMON, IDENT, IMPORT_LINE, lines_around
from lsp_server.context.index import Definition, SymbolIndex
from lsp_server.context.pieces import Piece

#: lines above / below the cursor whose names are looked up
LINES_BEFORE, LINES_AFTER = 40, 8
#: names looked up per request, best first
MAX_NAMES = 24
#: a name defined in more files than this is ambiguous
MAX_DEFINING_FILES = 4
#: lines of a definition shown at most (its signature and first lines)
MAX_LINES = 30


def _imports(text: str) -> str:
    """The import lines of a file (its first 400 lines), for the bonus and module hints."""
    return "\n".join(line for line in text.splitlines()[:400] if IMPORT_LINE.search(line))


def _ranked_names(lines: list[str], line: int, imported: set[str]) -> list[tuple[str, float]]:
    start, end = lines_around(lines, line, LINES_BEFORE, LINES_AFTER)
    scores: dict[str, float] = {}
    for i in range(start, end):
        weight = 3.0 if i == line else 1.0 / (1 + abs(i - line))
        for name in IDENT.findall(lines[i]):
            if name not in COMMON:
                scores[name] = scores.get(name, 0.0) + weight
    for name in scores:
        if name in imported:
            scores[name] *= 2.0
    return sorted(scores.items(), key=lambda kv: -kv[1])[:MAX_NAMES]


def _pick(defs: list[Definition], current_path: str | None, words: set[str]) -> Definition | None:
    """One definition of an ambiguous name: in the cursor's directory, or in a
    module named on an import line; else None."""
    if current_path:
        here = current_path.rpartition(os.sep)[0]
        near = [d for d in defs if d.path.rpartition(os.sep)[0] == here]
        if len(near) == 1:
            return near[0]
    named = [d for d in defs if os.path.splitext(os.path.basename(d.path))[0] in words]
    return named[0] if len(named) == 1 else None


def candidates(lines: list[str], line: int, head: str, current_path: str | None, index: SymbolIndex,
               read: Callable[[Definition], list[str] | None], shown: Callable[[str], str],
               uri_of: Callable[[str], str], limit: int | None = None) -> list[Piece]:
    """Definition pieces for the cursor at ``lines[line]`` (lines around it);
    ``head`` is the start of the file, where its imports are; ``read`` gives a
    definition's first lines (at most ``MAX_LINES``).  Best first; the
    search stops once the pieces hold about ``limit`` tokens (estimated): the
    packer could not use more, and each further one may read a file."""
    imported = set(IDENT.findall(_imports(head)))
    own = index.names_in(current_path) if current_path else set()
    pieces: list[Piece] = []
    chars = 0
    for name, score in _ranked_names(lines, line, imported):
        if limit is not None and chars >= limit * CHARS_PER_TOKEN:
            break
        if name in own:
            continue
        defs = [d for d in index.lookup(name, limit=MAX_DEFINING_FILES + 1) if d.path != current_path]
        if not defs:
            continue
        files = {d.path for d in defs}
        if len(files) > 1 or index.count(name) > MAX_DEFINING_FILES:
            chosen = _pick(defs, current_path, imported)
            if chosen is None:
                continue
        else:
            chosen = defs[0]
        source = read(chosen)
        if not source:
            continue
        end = chosen.start + len(source)
        body = "".join(source)
        pieces.append(Piece(uri_of(chosen.path), shown(chosen.path), chosen.start, end, body,
                            f"definition of {name}", 10.0 + score))
        chars += len(body)
    return pieces
