"""What every filter may look at besides the middle itself."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from lsp_server.config import Multiline


@dataclass(frozen=True)
class FilterContext:
    """The text around the hole and the line-mode setting."""

    prefix: str
    suffix: str
    multiline: Multiline = "auto"
    language: str | None = None

    @property
    def line_prefix(self) -> str:
        """Text on the cursor line before the hole."""
        return self.prefix[self.prefix.rfind("\n") + 1:]

    @property
    def line_suffix(self) -> str:
        """Text on the cursor line after the hole."""
        nl = self.suffix.find("\n")
        return self.suffix if nl < 0 else self.suffix[:nl]


class Filter(Protocol):
    """A post-processing stage: returns the (possibly shortened) middle."""

    def __call__(self, middle: str, ctx: FilterContext) -> str: ...


def indent_of(line: str) -> int:
    """Indentation width of ``line`` (a tab counts as 4 columns)."""
    width = 0
    for ch in line:
        if ch == " ":
            width += 1
        elif ch == "\t":
            width += 4
        else:
            break
    return width
