"""Never show U+FFFD that the model did not mean: cut the middle where it starts.

A byte-level model writes bytes; a middle that ends inside a multi-byte
character, or holds a byte sequence that is not UTF-8, decodes to U+FFFD
(the replacement character), which the editor would show as a box or a
question mark.  What follows such a place is not trustworthy either, so the
middle is cut before the first one.  Where the text around the cursor holds
U+FFFD itself (a file that really contains it), the model may copy it, and the
middle is left alone.
"""
from __future__ import annotations

from lsp_server.postprocess.context import FilterContext

REPLACEMENT = "\ufffd"


def cut(middle: str, source_has_it: bool) -> str:
    """``middle`` up to its first U+FFFD, unless the source text holds one itself
    (shared with the live drafts, which are not post-processed)."""
    at = middle.find(REPLACEMENT)
    return middle if at < 0 or source_has_it else middle[:at]


def apply(middle: str, ctx: FilterContext) -> str:
    return cut(middle, REPLACEMENT in ctx.prefix or REPLACEMENT in ctx.suffix)
