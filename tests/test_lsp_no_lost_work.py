"""No lost work: fill-command edits never overwrite what the user typed.

A simulated editor types into a document while fill commands run over
ranges of it.  Like VS Code and Neovim, it applies a ``workspace/applyEdit``
only when the edit's version is the buffer's current version.  The test
checks the server's side of the contract: every edit it sends names the
version its fill was computed for, an edit is never sent once the server
has seen a newer version, and at the end every character the user typed is
still in the buffer.
"""
from __future__ import annotations

import asyncio
import random
import re

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import LanguageClient
from test_lsp_server import CONFIG, base_options, start

from lsp_server.features.common import plain

#: starts processes or trains/loads models: left out of the quick loop (pytest -m 'not slow and not editor')
pytestmark = pytest.mark.slow

URI = "file:///tmp/diffill-test/stress.py"
LINES = [f"def f{i}(x):\n    return x + {i}\n" for i in range(30)]


class Editor:
    """The client's buffer: ASCII text, a version, incremental changes."""

    def __init__(self, client: LanguageClient, text: str) -> None:
        self.client = client
        self.text = text
        self.version = 1
        self.sent_edits: list[tuple[int, int]] = []  # (edit version, buffer version on arrival)
        self.applied = 0
        self.refused = 0

    def offset(self, line: int, character: int) -> int:
        lines = self.text.split("\n")
        return sum(len(ln) + 1 for ln in lines[:line]) + character

    def position(self, offset: int) -> tuple[int, int]:
        before = self.text[:offset]
        return before.count("\n"), offset - (before.rfind("\n") + 1)

    def replace(self, start: int, end: int, new: str) -> None:
        """Edit the buffer and tell the server, as an editor does."""
        (sl, sc), (el, ec) = self.position(start), self.position(end)
        self.text = self.text[:start] + new + self.text[end:]
        self.version += 1
        self.client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=self.version),
            content_changes=[types.TextDocumentContentChangePartial(
                range=types.Range(start=types.Position(sl, sc), end=types.Position(el, ec)), text=new)],
        ))

    def apply_edit(self, params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
        change = params.edit.document_changes[0]
        self.sent_edits.append((change.text_document.version, self.version))
        if change.text_document.version != self.version:
            self.refused += 1
            return types.ApplyWorkspaceEditResult(applied=False, failure_reason="version mismatch")
        for edit in change.edits:
            r = edit.range
            self.replace(self.offset(r.start.line, r.start.character),
                         self.offset(r.end.line, r.end.character), edit.new_text)
        self.applied += 1
        return types.ApplyWorkspaceEditResult(applied=True)


@pytest_lsp.fixture(config=CONFIG)
async def client(lsp_client: LanguageClient, tiny_model_dir):
    await start(lsp_client, {**base_options(tiny_model_dir), "cacheSize": 0, "drafts": False})
    yield
    await lsp_client.shutdown_session()


async def test_concurrent_typing_and_fills_lose_no_user_edit(client: LanguageClient):
    rng = random.Random(7)
    editor = Editor(client, "".join(LINES))
    client.on_apply_edit = editor.apply_edit  # type: ignore[attr-defined]
    client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
        uri=URI, language_id="python", version=1, text=editor.text)))
    typed: list[str] = []
    results: list[dict] = []

    async def type_marker(n: int) -> None:
        """Type ``#<n>;`` one key at a time at a random spot (possibly inside a
        range being filled), yielding between keys like a person would."""
        marker = f"#{n};"
        inside = {i for m in re.finditer(r"#\d+;", editor.text) for i in range(m.start() + 1, m.end())}
        at = rng.choice([i for i in range(len(editor.text) + 1) if i not in inside])
        for i, ch in enumerate(marker):
            editor.replace(at + i, at + i, ch)
            await asyncio.sleep(rng.uniform(0, 0.01))
        typed.append(marker)

    for n in range(40):
        # fill over the body of a random line (a range: the edit replaces text).
        # Replacing what the user selected when asking is the point of a fill,
        # so the range holds no earlier marker; what is typed later must survive.
        lines = editor.text.split("\n")
        line = rng.choice([i for i, text in enumerate(lines[:-1]) if "#" not in text])
        length = len(lines[line])
        sent_version = editor.version
        fill = asyncio.ensure_future(client.workspace_execute_command_async(types.ExecuteCommandParams(
            command="diffill.fillInTheMiddle",
            arguments=[{"uri": URI, "range": {"start": {"line": line, "character": min(4, length)},
                                              "end": {"line": line, "character": length}}}])))
        racing = n % 2 == 1  # odd rounds: the user keeps typing while the fill runs
        if racing:
            await asyncio.sleep(0)  # the command is sent before the first key
            await type_marker(n)
        result = plain(await fill)
        results.append(result)
        assert result["version"] == sent_version  # computed for the version it was asked on
        if not racing:
            await type_marker(n)

    for edit_version, _ in editor.sent_edits:
        assert edit_version in {r["version"] for r in results}
    # nothing the user typed was overwritten
    for marker in typed:
        assert editor.text.count(marker) == 1, (marker, editor.text)
    # both paths ran: fills applied when the user paused, refused when they typed
    applied = [r for r in results if r["applied"]]
    refused = [r for r in results if not r["applied"]]
    assert editor.applied == len(applied) > 0
    assert len(refused) >= 20 and all("changed" in r.get("reason", "") or "refused" in r.get("reason", "")
                                      or "version" in r.get("reason", "") for r in refused[:20])
