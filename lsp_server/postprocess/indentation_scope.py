"""Stop the middle where it leaves the indentation scope of the cursor.

A model asked for a block tends to keep writing the next function or the
rest of the file.  Lines after the first one must stay inside the scope the
cursor is in: deeper than the cursor line when that line opens a block
(``if x:`` / ``{``), else at least as deep.  One line that closes the block at
the opener's depth (``}``, ``end``) is kept, since brace languages need it.
Blank lines are kept only if more scoped text follows.
"""
from __future__ import annotations

from lsp_server.postprocess.context import FilterContext, indent_of

_OPENERS = (":", "{", "(", "[", "do", "then", "begin")
_CLOSERS = ("}", ")", "]", "end", "fi", "done")


def apply(middle: str, ctx: FilterContext) -> str:
    lines = middle.split("\n")
    if len(lines) == 1:
        return middle
    cursor_line = ctx.line_prefix + lines[0]
    if cursor_line.strip():
        ref = indent_of(cursor_line)
        opens = cursor_line.rstrip().endswith(_OPENERS)
    else:
        # blank cursor line: the scope is set by the first line the middle writes
        first_text = next((ln for ln in lines[1:] if ln.strip()), "")
        ref = indent_of(first_text)
        if ctx.line_prefix:
            ref = min(ref, len(ctx.line_prefix.expandtabs(4)))
        opens = False
    kept = [lines[0]]
    pending_blank: list[str] = []
    for line in lines[1:]:
        if not line.strip():
            pending_blank.append(line)
            continue
        depth = indent_of(line)
        if opens:
            if depth > ref:
                kept.extend(pending_blank)
                kept.append(line)
                pending_blank = []
                continue
            if depth == ref and line.strip().startswith(_CLOSERS):
                kept.extend(pending_blank)
                kept.append(line)
            break
        if depth >= ref:
            kept.extend(pending_blank)
            kept.append(line)
            pending_blank = []
            continue
        break
    return "\n".join(kept)
