"""Typing through a suggestion: the rest of it, without asking the model again.

Why: when the ghost text says ``urn value`` and the user types ``u``, every
completion tool shows ``rn value`` at once; running the model again costs a
whole request and may change a suggestion the user is following.  The last
suggestion per document and request kind is kept with the text around it; a
request whose prefix is the old prefix plus the first characters of the old
suggestion (same suffix, same settings) is answered with the rest.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

from lsp_server.suggestion import Suggestion

#: characters of prefix / suffix compared (the window may shift as the user types)
TAIL = 256
#: documents remembered (one suggestion each per request kind)
SIZE = 64


@dataclass(frozen=True)
class Shown:
    """A suggestion and the text it was made for."""

    prefix_tail: str
    suffix_head: str
    settings: Hashable
    suggestion: Suggestion


class TypeThrough:
    """The last suggestion per (document, kind), and whether a new cursor continues it."""

    def __init__(self, size: int = SIZE) -> None:
        self.size = size
        self._shown: OrderedDict[Hashable, Shown] = OrderedDict()
        self.hits = 0

    def remember(self, key: Hashable, prefix: str, suffix: str, settings: Hashable, suggestion: Suggestion) -> None:
        """``suggestion`` was shown at the cursor between ``prefix`` and ``suffix``."""
        self._shown.pop(key, None)
        if suggestion.text:
            self._shown[key] = Shown(prefix[-TAIL:], suffix[:TAIL], settings, suggestion)
            while len(self._shown) > self.size:
                self._shown.popitem(last=False)

    def rest(self, key: Hashable, prefix: str, suffix: str, settings: Hashable) -> Suggestion | None:
        """What is left of the last suggestion if the user typed its beginning, else None."""
        shown = self._shown.get(key)
        if shown is None or shown.settings != settings or suffix[:TAIL] != shown.suffix_head:
            return None
        text = shown.suggestion.text
        for typed in range(1, len(text)):
            if prefix.endswith(shown.prefix_tail + text[:typed]):
                self.hits += 1
                return shown.suggestion.rest(typed)
        return None

    def forget(self, uri: str) -> None:
        """Drop what was shown in a closed document."""
        for key in [k for k in self._shown if isinstance(k, tuple) and k[0] == uri]:
            del self._shown[key]
