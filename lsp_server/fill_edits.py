"""Bookkeeping for the fill command's edits: several fills on one document, and
``workspace/applyEdit`` answers that come late.

Several fills on one document all run (none cancels another).  Their edits are
applied one at a time per document; each is computed for the text its fill
started on, and is still applied when everything that changed since is
diffill's own applied fill edits that do not touch its range: its range is
moved past them.  Any other change (the user typed) means the edit is not
applied, as before.  ``docs/PROTOCOL.md`` states the rule.

An ``applyEdit`` the editor has not answered within ``applyEditTimeoutMs`` is
reported to the fill as not applied, but the answer is still awaited (for a
bounded number of them): a late ``applied: true`` means the text is in the
document after all, and the server's record (``diffill/stats`` ``fillEdits``)
and ``diffill/status`` say so.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from lsp_server.documents import Document

log = logging.getLogger(__name__)

#: own applied edits remembered per document (to move later fills past them; digests, not texts)
EDITS_KEPT = 64
#: how long the next fill on a document waits for the editor's didChange of the last applied edit
SETTLE_S = 2.0
#: unanswered applyEdit requests still awaited for a late answer (older ones are forgotten)
LATE_KEPT = 8


def digest(text: str) -> bytes:
    """Identifies a document text (kept instead of the text: documents may be megabytes)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


@dataclass(frozen=True)
class AppliedEdit:
    """One fill edit the editor applied: ``before[start:end]`` became ``new_len`` characters."""

    before: bytes  # digests of the document text before and after the edit
    after: bytes
    start: int
    end: int
    new_len: int
    #: the document version the edit was applied to: any later version includes it
    version: int


@dataclass
class FillEdits:
    """Per-document order of fill edits and the edits already applied."""

    applied: dict[str, deque[AppliedEdit]] = field(default_factory=dict)
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def lock(self, uri: str) -> asyncio.Lock:
        """Held while one fill on ``uri`` checks the document and applies its edit."""
        return self.locks.setdefault(uri, asyncio.Lock())

    def forget(self, uri: str) -> None:
        """The document was closed: its history is of no use any more."""
        self.applied.pop(uri, None)
        lock = self.locks.get(uri)
        if lock is not None and not lock.locked():
            del self.locks[uri]

    async def settle(self, uri: str, current: Callable[[], Document | None]) -> None:
        """Give the editor's ``didChange`` for the last applied edit time to arrive.

        Settled once the document holds the edited text, or has any version after
        the one the edit was applied to: the editor sends its changes in order, so
        a later version (the user typed on after the edit) already includes it."""
        edits = self.applied.get(uri)
        if not edits:
            return
        expected = edits[-1].after
        applied_to = edits[-1].version
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_S
        seen: str | None = None
        while loop.time() < deadline:
            doc = current()
            if doc is None or doc.version > applied_to:
                return
            if doc.text is not seen:  # hash each text once
                seen = doc.text
                if digest(seen) == expected:
                    return
            await asyncio.sleep(0.02)

    def rebase(self, uri: str, started: Document, start: int, end: int,
               now: Document) -> tuple[int, int] | str | None:
        """Where ``started[start:end]`` is in ``now``.

        Returns the offsets in ``now``; None if the document changed otherwise
        (the user edited it); a reason when one of diffill's own fills changed
        this very range meanwhile.
        """
        if now.version == started.version and now.text == started.text:
            return start, end
        edits = self.applied.get(uri)
        if not edits:
            return None
        text = digest(started.text)
        moved = False
        for edit in edits:
            if edit.before != text:
                continue  # applied before this fill started, or on other text
            if edit.end <= start:
                shift = edit.new_len - (edit.end - edit.start)
                start, end = start + shift, end + shift
            elif edit.start < end:
                return "another fill changed this range meanwhile"
            text = edit.after
            moved = True
        if moved and digest(now.text) == text:
            return start, end
        return None

    def record(self, uri: str, before: Document, start: int, end: int, new_text: str) -> None:
        """The editor applied ``new_text`` over ``before.text[start:end]``."""
        edits = self.applied.setdefault(uri, deque(maxlen=EDITS_KEPT))
        after = before.text[:start] + new_text + before.text[end:]
        edits.append(AppliedEdit(digest(before.text), digest(after), start, end, len(new_text), before.version))


@dataclass
class LateAnswers:
    """``applyEdit`` requests a fill stopped waiting for, still awaited (at most ``LATE_KEPT``)."""

    forget_request: Callable[[Any], None]
    kept: OrderedDict[Any, Future] = field(default_factory=OrderedDict)

    def track(self, msg_id: Any, future: Future, on_answer: Callable[[Any], None]) -> None:
        """Call ``on_answer(result or exception)`` if the editor answers later."""
        self.kept[msg_id] = future

        def done(f: Future) -> None:
            if self.kept.pop(msg_id, None) is None or f.cancelled():
                return
            on_answer(f.exception() or f.result())

        future.add_done_callback(done)
        while len(self.kept) > LATE_KEPT:
            old_id, old = self.kept.popitem(last=False)
            log.warning("forgetting workspace/applyEdit %s: no answer, and newer ones are waiting", old_id)
            old.cancel()
            self.forget_request(old_id)

    def __len__(self) -> int:
        return len(self.kept)
