"""What a completion request asks to fill, as every entry point hands it to the pipeline."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypedDict

from lsp_server.documents import Document

#: the entry point a request came through (stats, cancel-previous keys, refusal rules)
RequestKind = Literal["inline", "completion", "command"]


class LspPosition(TypedDict):
    """An LSP position as JSON (line, character in the negotiated encoding)."""

    line: int
    character: int


class LspRange(TypedDict):
    """An LSP range as JSON, sent back as is (``diffill/draft``, the fill's edit)."""

    start: LspPosition
    end: LspPosition


@dataclass(frozen=True)
class Hole:
    """Where to fill: a document snapshot, string offsets and the LSP range."""

    doc: Document
    start: int
    end: int
    range: LspRange
