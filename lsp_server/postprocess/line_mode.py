"""Single-line vs multi-line: cut the middle at its first line break unless the
cursor context asks for a block.

``auto`` allows several lines only where the user is plausibly starting a
block: nothing but whitespace after the cursor on its line, and the line
before the cursor is blank (indentation only) or ends with a block opener.
Anywhere else (mid-expression, text after the cursor) one line is what an
editor can show and what the user expects.
"""
from __future__ import annotations

from lsp_server.postprocess.context import FilterContext

BLOCK_OPENERS = (":", "{", "(", "[", "=>", "->", "do", "then", "begin")


def wants_multiline(ctx: FilterContext) -> bool:
    """Whether the cursor context calls for more than one line."""
    if ctx.multiline == "always":
        return True
    if ctx.multiline == "never":
        return False
    if ctx.line_suffix.strip():
        return False
    before = ctx.line_prefix.rstrip()
    return not before.strip() or before.endswith(BLOCK_OPENERS)


def apply(middle: str, ctx: FilterContext) -> str:
    if wants_multiline(ctx):
        return middle
    if not ctx.line_prefix.strip() and not ctx.line_suffix.strip():
        # blank line: skip leading blank lines, then keep one line
        stripped = middle.lstrip("\r\n")
        cut = stripped.find("\n")
        return stripped if cut < 0 else stripped[:cut].rstrip("\r")
    cut = middle.find("\n")
    return middle if cut < 0 else middle[:cut].rstrip("\r")
