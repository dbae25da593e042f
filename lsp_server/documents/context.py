"""Cut the prefix/suffix the model sees around a cursor or a selection.

The engine windows by tokens itself; this cuts by characters at line
boundaries first so that the cache key, the request and the copy we send to
the worker thread stay small, and so that two edits far from the cursor give
the same key (same completion, served from the cache).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

#: characters of text kept before / after the cursor when no token budget is set
DEFAULT_PREFIX_CHARS = 12_000
DEFAULT_SUFFIX_CHARS = 6_000
#: rough characters per token for code, used to size the window from a token budget
CHARS_PER_TOKEN = 4
#: a surrogate code point in a ``str`` is always a lone one (pairs decode to one
#: astral character); clients may send them as JSON escapes ("\\ud800")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class InfillContext:
    """What surrounds the hole: windowed prefix/suffix plus the cursor line."""

    prefix: str
    suffix: str
    #: text on the cursor line before the hole (not windowed)
    line_prefix: str
    #: text on the line after the hole, up to the line break (not windowed)
    line_suffix: str
    language: str | None = None

    @property
    def key(self) -> tuple[str, str, str | None]:
        return (self.prefix, self.suffix, self.language)


def window_sizes(context_tokens: int | None) -> tuple[int, int]:
    """Character budgets (prefix, suffix) for a token budget."""
    if not context_tokens:
        return DEFAULT_PREFIX_CHARS, DEFAULT_SUFFIX_CHARS
    total = max(context_tokens * CHARS_PER_TOKEN * 2, 2_000)
    return (total * 2) // 3, total // 3


def extract(
    text: str,
    start: int,
    end: int | None = None,
    *,
    language: str | None = None,
    prefix_chars: int = DEFAULT_PREFIX_CHARS,
    suffix_chars: int = DEFAULT_SUFFIX_CHARS,
) -> InfillContext:
    """Context for filling ``text[start:end]`` (``end`` None: an empty hole at ``start``)."""
    end = start if end is None else end
    if not 0 <= start <= end <= len(text):
        raise ValueError(f"bad hole {start}..{end} in a text of {len(text)} characters")
    prefix = text[:start]
    suffix = text[end:]
    if len(prefix) > prefix_chars:
        cut = prefix[-prefix_chars:]
        nl = cut.find("\n")
        prefix = cut[nl + 1:] if 0 <= nl < len(cut) - 1 else cut
    if len(suffix) > suffix_chars:
        cut = suffix[:suffix_chars]
        nl = cut.rfind("\n")
        suffix = cut[: nl + 1] if nl > 0 else cut
    line_start = max(text.rfind("\n", 0, start), text.rfind("\r", 0, start)) + 1
    line_prefix = text[line_start:start]
    eol = len(text)
    for sep in ("\n", "\r"):
        i = text.find(sep, end)
        if i != -1:
            eol = min(eol, i)
    line_suffix = text[end:eol]
    return InfillContext(_scalar(prefix), _scalar(suffix), _scalar(line_prefix), _scalar(line_suffix), language)


def _scalar(text: str) -> str:
    """``text`` with lone surrogates as U+FFFD: tokenizers (and UTF-8) reject them.

    One code point for one keeps every length and offset as it was.
    """
    return _LONE_SURROGATE.sub("\ufffd", text)
