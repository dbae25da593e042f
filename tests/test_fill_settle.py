"""The next fill on a document waits for the editor's ``didChange`` of the last
applied fill edit (lsp_server/fill_edits.py), and no longer than that: once the
document has any later version (the user typed on after the edit), it goes at once."""
from __future__ import annotations

import asyncio
import time

from lsp_server.documents.store import Document
from lsp_server.fill_edits import SETTLE_S, FillEdits

URI = "file:///settle.py"


def _timed_settle(edits: FillEdits, doc: Document) -> float:
    async def go() -> float:
        start = time.perf_counter()
        await edits.settle(URI, lambda: doc)
        return time.perf_counter() - start

    return asyncio.run(go())


def test_settled_by_the_edited_text_or_any_later_version() -> None:
    edits = FillEdits()
    before = Document(URI, "x = \ny = 2\n", 4)
    edits.record(URI, before, 4, 4, "1")
    assert _timed_settle(edits, Document(URI, "x = 1\ny = 2\n", 5)) < 0.5  # the edit's own didChange
    # the user typed after the edit: the text is not the edited text, but the version is later
    assert _timed_settle(edits, Document(URI, "x = 1\ny = 2\n# more\n", 9)) < 0.5


def test_waits_while_the_edit_has_not_arrived() -> None:
    edits = FillEdits()
    before = Document(URI, "x = \n", 4)
    edits.record(URI, before, 4, 4, "1")
    assert _timed_settle(edits, before) >= SETTLE_S * 0.9  # still the version the edit was applied to
