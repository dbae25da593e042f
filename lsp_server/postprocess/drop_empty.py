"""Drop a middle that is empty or whitespace only: showing blank ghost text
or a blank completion item only gets in the user's way."""
from __future__ import annotations

from lsp_server.postprocess.context import FilterContext


def apply(middle: str, ctx: FilterContext) -> str:
    return middle if middle.strip() else ""
