"""Tell the user about a problem once, not on every keystroke.

A failing model or an oversized file would otherwise pop the same message
for every completion request.  A notice is shown the first time its key is
seen; ``clear`` (after a request succeeds, or the model is reloaded) lets the
same problem be reported again if it comes back.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable

from lsprotocol import types

ShowMessage = Callable[[str, types.MessageType], None]


class Notices:
    """``window/showMessage`` with de-duplication by key.

    A key is a tuple whose first item names the kind of problem ("engine",
    "too-large", ...), so that a kind can be forgotten at once.
    """

    def __init__(self, show: ShowMessage, limit: int = 1024) -> None:
        self._show = show
        self._seen: dict[tuple[Hashable, ...], None] = {}
        self._limit = limit

    def show_once(self, key: tuple[Hashable, ...], message: str,
                  kind: types.MessageType = types.MessageType.Error) -> bool:
        """Show ``message`` unless ``key`` was shown since it was last cleared."""
        if key in self._seen:
            return False
        if len(self._seen) >= self._limit:  # bounded: keys can be per document
            self._seen.pop(next(iter(self._seen)))
        self._seen[key] = None
        self._show(message, kind)
        return True

    def clear(self, *kinds: str) -> None:
        """Forget shown keys of these kinds (all keys if none is named)."""
        if not kinds:
            self._seen.clear()
            return
        for key in [k for k in self._seen if k[0] in kinds]:
            del self._seen[key]
