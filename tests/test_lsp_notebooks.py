"""Notebooks: the real server over stdio with LSP 3.17 notebook synchronisation.

A completion in a cell must give the model the code cells above as prefix and
those below as suffix (recorded by tests/fault_server.py at the engine's door),
leave markdown cells out, follow edits and cell moves, and keep the fill's edit
addressed to the cell, version-guarded by the cell's own version.
"""
from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient
from test_lsp_server import SERVER_ENV, attach_recorders, capabilities, plain

#: starts server processes: left out of the quick loop
pytestmark = pytest.mark.slow

FAULT_SERVER = str(Path(__file__).with_name("fault_server.py"))
NOTEBOOK = "file:///tmp/diffill-test/analysis.ipynb"
DEFINE = "import math\n\n\ndef area(radius):\n    return math.pi * radius ** 2\n"
NOTES = "The area of a circle of radius 2:"
WRITING = "r = 2\nresult = "
CALL = "print(area(3))\n"


def cell_uri(n: int) -> str:
    return f"vscode-notebook-cell:/tmp/diffill-test/analysis.ipynb#W{n}sZmlsZQ%3D%3D"


CELLS = [  # (kind, language, text)
    (types.NotebookCellKind.Code, "python", DEFINE),
    (types.NotebookCellKind.Markup, "markdown", NOTES),
    (types.NotebookCellKind.Code, "python", WRITING),
    (types.NotebookCellKind.Code, "python", CALL),
]
CURSOR_CELL = 2
CURSOR = (1, len("result = "))


@asynccontextmanager
async def server(model_dir: Path, record: Path) -> AsyncIterator[LanguageClient]:
    env = {**SERVER_ENV, "DIFFILL_TEST_FAULTS": json.dumps({"record_requests": str(record)})}
    client = await ClientServerConfig(server_command=[sys.executable, FAULT_SERVER], server_env=env).start()
    try:
        attach_recorders(client)
        caps = capabilities()
        caps.notebook_document = types.NotebookDocumentClientCapabilities(
            synchronization=types.NotebookDocumentSyncClientCapabilities())  # as VS Code declares it
        result = await client.initialize_session(types.InitializeParams(capabilities=caps, initialization_options={
            "model": str(model_dir), "device": "cpu", "threads": 1, "maxNewTokens": 4, "debounceMs": 0,
            "cacheSize": 0, "multiline": "always"}))
        sync = result.capabilities.notebook_document_sync
        assert sync and sync.notebook_selector[0].notebook == "jupyter-notebook"
        yield client
    finally:
        try:
            await asyncio.wait_for(client.shutdown_session(), 30)
        finally:
            await client.stop()


def open_notebook(client: LanguageClient) -> None:
    client.notebook_document_did_open(types.DidOpenNotebookDocumentParams(
        notebook_document=types.NotebookDocument(
            uri=NOTEBOOK, notebook_type="jupyter-notebook", version=1,
            cells=[types.NotebookCell(kind=kind, document=cell_uri(i)) for i, (kind, _, _) in enumerate(CELLS)]),
        cell_text_documents=[types.TextDocumentItem(uri=cell_uri(i), language_id=lang, version=1, text=text)
                             for i, (_, lang, text) in enumerate(CELLS)],
    ))


def recorded(record: Path) -> list[dict]:
    return [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []


async def inline(client: LanguageClient, cell: int, line: int, character: int) -> types.InlineCompletionList | None:
    return await client.text_document_inline_completion_async(types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=cell_uri(cell)),
        position=types.Position(line=line, character=character),
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked)))


async def test_a_cell_sees_the_code_cells_above_and_below(tiny_model_dir: Path, tmp_path: Path) -> None:
    record = tmp_path / "requests.jsonl"
    async with server(tiny_model_dir, record) as client:
        open_notebook(client)
        await inline(client, CURSOR_CELL, *CURSOR)
        (req,) = recorded(record)
        # the cells above, in order, each after a "# %%" marker, then the cell up to the cursor
        assert req["prefix"] == "# %%\n" + DEFINE + "\n# %%\n" + WRITING
        # the rest of the cell, then the cells below
        assert req["suffix"] == "\n\n# %%\n" + CALL.rstrip("\n") + "\n"
        assert NOTES not in req["prefix"] + req["suffix"]  # markdown cells are left out
        # diffill/context names the cells used, with their ranges
        ctx = plain(await client.protocol.send_request_async("diffill/context", {
            "textDocument": {"uri": cell_uri(CURSOR_CELL)}, "position": {"line": CURSOR[0], "character": CURSOR[1]}}))
        assert ctx["cells"] == {
            "before": [{"uri": cell_uri(0), "range": {"start": {"line": 0, "character": 0},
                                                      "end": {"line": 5, "character": 0}}}],
            "after": [{"uri": cell_uri(3), "range": {"start": {"line": 0, "character": 0},
                                                     "end": {"line": 1, "character": 0}}}]}

        # an edit in the first cell (notebookDocument/didChange textContent) is seen by the next request
        client.notebook_document_did_change(types.DidChangeNotebookDocumentParams(
            notebook_document=types.VersionedNotebookDocumentIdentifier(uri=NOTEBOOK, version=2),
            change=types.NotebookDocumentChangeEvent(cells=types.NotebookDocumentCellChanges(text_content=[
                types.NotebookDocumentCellContentChanges(
                    document=types.VersionedTextDocumentIdentifier(uri=cell_uri(0), version=2),
                    changes=[types.TextDocumentContentChangePartial(
                        range=types.Range(start=types.Position(line=3, character=4),
                                          end=types.Position(line=3, character=8)),
                        text="disc_area")])]))))
        await inline(client, CURSOR_CELL, *CURSOR)
        assert "def disc_area(radius):" in recorded(record)[-1]["prefix"]

        # moving the calling cell above the cursor's cell (delete it, insert it at 1)
        client.notebook_document_did_change(types.DidChangeNotebookDocumentParams(
            notebook_document=types.VersionedNotebookDocumentIdentifier(uri=NOTEBOOK, version=3),
            change=types.NotebookDocumentChangeEvent(cells=types.NotebookDocumentCellChanges(
                structure=types.NotebookDocumentCellChangeStructure(
                    array=types.NotebookCellArrayChange(start=3, delete_count=1))))))
        client.notebook_document_did_change(types.DidChangeNotebookDocumentParams(
            notebook_document=types.VersionedNotebookDocumentIdentifier(uri=NOTEBOOK, version=4),
            change=types.NotebookDocumentChangeEvent(cells=types.NotebookDocumentCellChanges(
                structure=types.NotebookDocumentCellChangeStructure(array=types.NotebookCellArrayChange(
                    start=1, delete_count=0,
                    cells=[types.NotebookCell(kind=types.NotebookCellKind.Code, document=cell_uri(3))]))))))
        await inline(client, CURSOR_CELL, *CURSOR)
        last = recorded(record)[-1]
        assert last["prefix"].endswith("# %%\n" + CALL + "\n# %%\n" + WRITING) and last["suffix"] == ""


async def test_the_fill_edits_the_cell_at_the_cells_version(tiny_model_dir: Path, tmp_path: Path) -> None:
    record = tmp_path / "requests.jsonl"
    async with server(tiny_model_dir, record) as client:
        open_notebook(client)
        result = plain(await client.workspace_execute_command_async(types.ExecuteCommandParams(
            command="diffill.fillInTheMiddle",
            arguments=[{"uri": cell_uri(CURSOR_CELL), "position": {"line": CURSOR[0], "character": CURSOR[1]}}])))
        assert recorded(record), result
        assert DEFINE in recorded(record)[-1]["prefix"]
        if not result["text"]:  # the random test model may write nothing printable
            assert result["applied"] is False and client.edits == []
            return
        assert result["applied"] is True
        (edit,) = client.edits
        (doc_edit,) = edit.edit.document_changes
        assert doc_edit.text_document.uri == cell_uri(CURSOR_CELL) and doc_edit.text_document.version == 1
        assert doc_edit.edits[0].range.start == types.Position(*CURSOR)


async def test_closing_the_notebook_forgets_its_cells(tiny_model_dir: Path, tmp_path: Path) -> None:
    record = tmp_path / "requests.jsonl"
    async with server(tiny_model_dir, record) as client:
        open_notebook(client)
        client.notebook_document_did_close(types.DidCloseNotebookDocumentParams(
            notebook_document=types.NotebookDocumentIdentifier(uri=NOTEBOOK),
            cell_text_documents=[types.TextDocumentIdentifier(uri=cell_uri(i)) for i in range(len(CELLS))]))
        with pytest.raises(Exception, match="unknown document"):
            await inline(client, CURSOR_CELL, *CURSOR)
        assert recorded(record) == []
