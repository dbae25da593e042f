"""The unit every context source proposes and the packer fits into the budget."""
from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Piece:
    """Lines ``start_line`` (inclusive) .. ``end_line`` (exclusive) of another file.

    ``path`` is what the model sees in the file header (relative to its
    workspace folder where possible); ``score`` orders pieces, higher first
    into the budget; ``reason`` tells the user why it was chosen.
    """

    uri: str
    path: str
    start_line: int
    end_line: int
    text: str
    reason: str
    score: float
    tokens: int = 0

    def overlaps(self, other: Piece) -> bool:
        return self.uri == other.uri and self.start_line < other.end_line and other.start_line < self.end_line

    def with_tokens(self, tokens: int) -> Piece:
        return replace(self, tokens=tokens)


@dataclass(frozen=True)
class Packed:
    """What goes into one prompt: pieces most relevant last, and the tokens they use
    (headers included) out of ``budget``."""

    pieces: tuple[Piece, ...]
    used: int
    budget: int
    path: str | None = None  # the cursor file's path as the model sees it
