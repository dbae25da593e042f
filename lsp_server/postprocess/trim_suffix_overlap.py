"""Remove the end of the middle that repeats the start of the suffix.

Models often write the closing ``)`` or the next line that is already there
after the cursor; inserting it would duplicate text.  The overlap must be
either punctuation/whitespace only (``)``, ``]);``) or at least a few
characters long, so that a one-letter coincidence (middle ``b, a`` before the
suffix ``a)``) does not eat real code.
"""
from __future__ import annotations

from lsp_server.postprocess.context import FilterContext

MIN_WORD_OVERLAP = 4


def _acceptable(overlap: str, whole: bool) -> bool:
    if not overlap:
        return False
    if whole or len(overlap) >= MIN_WORD_OVERLAP:
        return True
    return not any(ch.isalnum() or ch == "_" for ch in overlap)


def apply(middle: str, ctx: FilterContext) -> str:
    suffix = ctx.suffix
    if not middle or not suffix:
        return middle
    # also match when the suffix starts with whitespace the middle omitted
    best = 0
    for k in range(min(len(middle), len(suffix)), 0, -1):
        if middle.endswith(suffix[:k]) and _acceptable(suffix[:k], k == len(middle)):
            best = k
            break
    if best:
        return middle[: len(middle) - best]
    stripped = suffix.lstrip(" \t")
    if stripped is not suffix and stripped:
        for k in range(min(len(middle), len(stripped)), 0, -1):
            if middle.endswith(stripped[:k]) and _acceptable(stripped[:k], False) and not stripped[:k].isspace():
                return middle[: len(middle) - k].rstrip(" \t")
    return middle
