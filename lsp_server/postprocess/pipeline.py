"""Run the post-processing filters in order.

Order matters and reads top to bottom:
  1. undecodable         - cut before a character the model's bytes did not make (U+FFFD)
  2. line_mode           - choose one line or a block from the cursor context
  3. indentation_scope   - a block stops where it leaves the cursor's scope
  4. trim_suffix_overlap - the (now final) end must not repeat the suffix
  5. balance_brackets    - no closer that the prefix/suffix pairing forbids
  6. drop_empty          - nothing left worth showing -> ""
Cutting lines first means the overlap and bracket checks see the text that
will really be inserted.
"""
from __future__ import annotations

from collections.abc import Sequence

from lsp_server.postprocess import (
    balance_brackets,
    drop_empty,
    indentation_scope,
    line_mode,
    trim_suffix_overlap,
    undecodable,
)
from lsp_server.postprocess.context import Filter, FilterContext

FILTERS: tuple[tuple[str, Filter], ...] = (
    ("undecodable", undecodable.apply),
    ("line_mode", line_mode.apply),
    ("indentation_scope", indentation_scope.apply),
    ("trim_suffix_overlap", trim_suffix_overlap.apply),
    ("balance_brackets", balance_brackets.apply),
    ("drop_empty", drop_empty.apply),
)


def postprocess(
    middle: str, ctx: FilterContext, filters: Sequence[tuple[str, Filter]] = FILTERS
) -> str:
    """The middle after every filter; "" means "show nothing"."""
    for _name, apply in filters:
        if not middle:
            return ""
        middle = apply(middle, ctx)
    return middle
