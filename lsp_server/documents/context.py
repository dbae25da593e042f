"""Cut the prefix/suffix the model sees around a cursor or a selection.

The engine windows by tokens itself; this cuts by characters at line
boundaries first so that the cache key, the request and the copy we send to
the worker thread stay small, and so that two edits far from the cursor give
the same key (same completion, served from the cache).  How many characters:
``engine.window.char_budgets``, the one windowing policy.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from engine.window import DEFAULT_PREFIX_CHARS, DEFAULT_SUFFIX_CHARS

#: a surrogate code point in a ``str`` is always a lone one (pairs decode to one
#: astral character); clients may send them as JSON escapes ("\\ud800")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class InfillContext:
    """What surrounds the hole: the windowed prefix and suffix."""

    prefix: str
    suffix: str
    language: str | None = None


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
    return InfillContext(scalar_text(prefix), scalar_text(suffix), language)


def scalar_text(text: str) -> str:
    """``text`` with lone surrogates as U+FFFD: tokenizers (and UTF-8) reject them.

    One code point for one keeps every length and offset as it was.  ASCII text
    (most code) has none, and ``isascii`` answers that much faster than the search.
    """
    return text if text.isascii() else _LONE_SURROGATE.sub("\ufffd", text)
