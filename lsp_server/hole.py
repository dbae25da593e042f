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
    """Where to fill: a document snapshot, string offsets and the LSP range.

    ``before`` and ``after`` are text that belongs to the same program around
    the document (a notebook's other code cells): the model sees it as prefix
    and suffix, while edits and drafts still address ``doc`` alone.
    """

    doc: Document
    start: int
    end: int
    range: LspRange
    before: str = ""
    after: str = ""

    def program(self) -> tuple[str, int, int]:
        """The text the model reads around the hole, and the hole's offsets in it."""
        shift = len(self.before)
        return self.before + self.doc.text + self.after, self.start + shift, self.end + shift
