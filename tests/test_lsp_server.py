"""End-to-end: the real server over stdio with the real (tiny, random) model.

Expected texts are computed with the same engine in-process and the same
post-processing, so assertions check the server's plumbing exactly even
though the tiny model writes gibberish.
"""
from __future__ import annotations

import asyncio
import os
import sys

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient

from engine import InfillRequest
from lsp_server.features.common import plain
from lsp_server.postprocess.context import FilterContext
from lsp_server.postprocess.pipeline import postprocess

#: starts processes or trains/loads models: left out of the quick loop (pytest -m 'not slow and not editor')
pytestmark = pytest.mark.slow

SERVER_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
CONFIG = ClientServerConfig(server_command=[sys.executable, "-m", "lsp_server"], server_env=SERVER_ENV)
URI = "file:///tmp/diffill-test/example.py"
TEXT = ("import json\n\n\ndef load(path):\n    with open(path) as f:\n        return json.load(f)\n\n\n"
        "def save(path, data):\n    \n")
MAX_NEW = 8


def capabilities(encodings: list[str] | None = None) -> types.ClientCapabilities:
    return types.ClientCapabilities(
        general=types.GeneralClientCapabilities(position_encodings=encodings) if encodings else None,
        window=types.WindowClientCapabilities(work_done_progress=True),
        workspace=types.WorkspaceClientCapabilities(
            workspace_edit=types.WorkspaceEditClientCapabilities(document_changes=True)
        ),
    )


def attach_recorders(client: LanguageClient) -> None:
    client.drafts = []  # type: ignore[attr-defined]
    client.statuses = []  # type: ignore[attr-defined]
    client.edits = []  # type: ignore[attr-defined]

    client.on_draft = None  # type: ignore[attr-defined]

    @client.feature("diffill/draft")
    def _draft(params):
        client.drafts.append(plain(params))
        if client.on_draft is not None:  # react at once, not at the next poll
            client.on_draft()

    @client.feature("diffill/status")
    def _status(params):
        client.statuses.append(plain(params))

    client.on_apply_edit = None  # type: ignore[attr-defined]

    @client.feature(types.WORKSPACE_APPLY_EDIT)
    def _apply(params: types.ApplyWorkspaceEditParams):
        client.edits.append(params)
        if client.on_apply_edit is not None:  # an editor model decides
            return client.on_apply_edit(params)
        return types.ApplyWorkspaceEditResult(applied=True)


async def start(client: LanguageClient, options: dict, encodings: list[str] | None = None) -> types.InitializeResult:
    attach_recorders(client)
    return await client.initialize_session(
        types.InitializeParams(capabilities=capabilities(encodings), initialization_options=options)
    )


def base_options(model_dir) -> dict:
    # float32 as the tiny_engine fixture the answers are compared with, whatever the CPU
    return {"model": str(model_dir), "device": "cpu", "dtype": "float32", "maxNewTokens": MAX_NEW,
            "debounceMs": 0, "multiline": "always", "threads": 1}


@pytest_lsp.fixture(config=CONFIG)
async def client(lsp_client: LanguageClient, tiny_model_dir):
    lsp_client.init_result = await start(lsp_client, base_options(tiny_model_dir))  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


def open_doc(client: LanguageClient, text: str = TEXT, uri: str = URI, version: int = 1) -> None:
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=uri, language_id="python", version=version, text=text)
    ))


def expected_middle(engine, prefix: str, suffix: str, multiline: str = "always") -> str:
    middle = engine.infill(InfillRequest(prefix=prefix, suffix=suffix, language="python",
                                         max_new_tokens=MAX_NEW)).middle
    return postprocess(middle, FilterContext(prefix, suffix, multiline, "python"))  # type: ignore[arg-type]


async def stats(client: LanguageClient, **params) -> dict:
    return plain(await client.protocol.send_request_async("diffill/stats", params or None))


async def wait_for_draft(client: LanguageClient) -> None:
    """Wait (up to 60 s) until the engine is denoising, i.e. a draft arrived.

    Generous: when a test runs first in its server, the wait includes the
    model load (importing torch and transformers), slow on a loaded machine."""
    for _ in range(2400):
        if client.drafts:
            break
        await asyncio.sleep(0.025)
    assert client.drafts, "no draft arrived"


async def send(coro) -> asyncio.Task:
    """Start a request now (the client's *_async methods send only when awaited)."""
    task = asyncio.ensure_future(coro)
    await asyncio.sleep(0)
    return task


def inline_params(line: int, character: int, invoked: bool = True, uri: str = URI) -> types.InlineCompletionParams:
    kind = types.InlineCompletionTriggerKind.Invoked if invoked else types.InlineCompletionTriggerKind.Automatic
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=character),
        context=types.InlineCompletionContext(trigger_kind=kind),
    )


CURSOR = (9, 4)  # the indented blank line in save()


def split_at(text: str, line: int, character: int) -> tuple[str, str]:
    lines = text.split("\n")
    offset = sum(len(ln) + 1 for ln in lines[:line]) + character
    return text[:offset], text[offset:]


async def test_capabilities_advertised(client: LanguageClient):
    caps = client.init_result.capabilities  # type: ignore[attr-defined]
    assert caps.inline_completion_provider is not None
    assert caps.completion_provider is not None
    assert "diffill.fillInTheMiddle" in caps.execute_command_provider.commands
    sync = caps.text_document_sync
    assert getattr(sync, "change", sync) == types.TextDocumentSyncKind.Incremental
    assert caps.position_encoding in (types.PositionEncodingKind.Utf16, "utf-16")


def without_busy(states: list[str]) -> list[str]:
    """The statuses with each request's "busy" and the "ready" that ends it left out: a
    request turns the status busy only after 100 ms in the engine (tests/test_lsp_faults.py),
    which a quick request on a busy machine may take."""
    kept: list[str] = []
    for state in states:
        if state == "ready" and kept[-1:] == ["busy"]:
            kept.pop()
        else:
            kept.append(state)
    return kept


async def test_model_load_reports_progress_and_status(client: LanguageClient):
    open_doc(client)
    await client.text_document_inline_completion_async(inline_params(*CURSOR))
    states = [s["state"] for s in client.statuses]
    assert without_busy(states) == ["loading", "ready"], states
    kinds = [[v.kind for v in reports] for reports in client.progress_reports.values()]
    assert ["begin", "end"] in kinds, kinds


async def test_inline_completion_returns_infill(client: LanguageClient, tiny_engine):
    open_doc(client)
    result = await client.text_document_inline_completion_async(inline_params(*CURSOR))
    prefix, suffix = split_at(TEXT, *CURSOR)
    want = expected_middle(tiny_engine, prefix, suffix)
    got = [item.insert_text for item in result.items]
    # asked for (invoked): the engine's middle first, then up to two distinct alternatives
    assert got[:1] == ([want] if want else []) and len(got) <= 3 and len(set(got)) == len(got)
    for item in result.items:
        assert item.command is not None and item.command.command == "diffill.accepted"
        assert 0.0 < item.command.arguments[0]["confidence"] <= 1.0
    if want:
        assert result.items[0].range == types.Range(start=types.Position(*CURSOR), end=types.Position(*CURSOR))
    # the same document state again is served from the cache
    again = await client.text_document_inline_completion_async(inline_params(*CURSOR))
    assert [i.insert_text for i in again.items] == got
    s = await stats(client)
    assert s["completed"] == 1 and s["cacheHits"] == 1


async def test_completion_returns_infill_item(client: LanguageClient, tiny_engine):
    text = TEXT + "    ret"
    open_doc(client, text)
    line = text.count("\n")
    result = await client.text_document_completion_async(types.CompletionParams(
        text_document=types.TextDocumentIdentifier(uri=URI),
        position=types.Position(line=line, character=7),
        context=types.CompletionContext(trigger_kind=types.CompletionTriggerKind.Invoked),
    ))
    want = expected_middle(tiny_engine, text, "")
    if not want:
        assert list(result.items) == []
        return
    item, *others = result.items  # asked for: the engine's middle first, then distinct alternatives
    assert item.text_edit.new_text == "ret" + want
    assert item.filter_text == "ret" + want
    assert item.text_edit.range == types.Range(start=types.Position(line, 4), end=types.Position(line, 7))
    assert item.preselect and len(others) <= 2
    assert len({i.text_edit.new_text for i in result.items}) == len(result.items)
    for index, i in enumerate(result.items):
        sure = f"{round(100 * i.data['confidence'])}%"
        assert i.detail == f"diffill, {sure} sure" and i.label_details.description == f"diffill {sure}"
        assert i.sort_text == str(index) and i.command.command == "diffill.accepted"


@pytest.mark.parametrize("invoked", [False, True], ids=["debounced", "engine-level"])
async def test_cancel_storm_computes_only_last(client: LanguageClient, invoked: bool):
    # debounced: superseded requests end while waiting; invoked (no debounce):
    # each one reaches the engine queue or the engine and is cancelled there
    settings = {"debounceMs": 60} if not invoked else {"maxNewTokens": 64, "steps": 64}
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"diffill": settings}))
    open_doc(client, "x = 1\n")
    await stats(client, reset=True)
    futures = []
    text = "x = 1\n"
    for i in range(50):
        ch = chr(ord("a") + i % 26)
        line = text.count("\n")
        col = len(text.split("\n")[-1])
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=i + 2),
            content_changes=[types.TextDocumentContentChangePartial(
                range=types.Range(start=types.Position(line, col), end=types.Position(line, col)), text=ch)],
        ))
        text += ch
        futures.append(await send(client.text_document_inline_completion_async(
            inline_params(line, col + 1, invoked=invoked))))
    results = await asyncio.gather(*futures)
    s = await stats(client)
    assert s["requests"] == 50
    assert s["completed"] == 1, s
    assert s["cancelled"] == 49, s
    assert all(list(r.items) == [] for r in results[:-1])


async def test_empty_document_asks_nothing(client: LanguageClient):
    open_doc(client, "\n\n")
    result = await client.text_document_inline_completion_async(inline_params(1, 0))
    assert list(result.items) == []
    s = await stats(client)
    assert s["engineStarted"] == 0 and s["errors"] == 0 and s["last"]["outcome"] == "empty"
    assert not [m for m in client.messages if m.type == types.MessageType.Error]


async def test_cancel_request_stops_engine(client: LanguageClient):
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        settings={"diffill": {"maxNewTokens": 64, "steps": 64, "drafts": {"completion": True}}}))
    open_doc(client)
    await stats(client, reset=True)
    msg_id = "cancel-me"
    client.on_draft = lambda: client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
    fut = await send(client.protocol.send_request_async(
        types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(*CURSOR), msg_id=msg_id))
    await wait_for_draft(client)
    with pytest.raises(JsonRpcException):
        await fut
    await asyncio.sleep(0.3)
    s = await stats(client)
    assert s["completed"] == 0 and s["engineCancelled"] == 1, s
    steps = client.drafts[0]["steps"]
    assert len(client.drafts) < steps, "the engine ran to the end despite the cancel"


async def test_fill_command_applies_edit(client: LanguageClient, tiny_engine):
    open_doc(client)
    result = plain(await client.workspace_execute_command_async(types.ExecuteCommandParams(
        command="diffill.fillInTheMiddle",
        arguments=[{"uri": URI, "position": {"line": CURSOR[0], "character": CURSOR[1]}}],
    )))
    prefix, suffix = split_at(TEXT, *CURSOR)
    want = expected_middle(tiny_engine, prefix, suffix)
    assert result["text"] == want
    drafts = client.drafts
    assert drafts and drafts[-1]["final"] and drafts[-1]["text"] == want
    assert all(d["version"] == 1 and d["uri"] == URI for d in drafts)
    if not want:
        assert result["applied"] is False and client.edits == []
        return
    assert result["applied"] is True and result["version"] == 1
    (edit,) = client.edits
    (doc_edit,) = edit.edit.document_changes
    assert doc_edit.text_document.version == 1
    assert doc_edit.edits[0].new_text == want
    assert doc_edit.edits[0].range.start == types.Position(*CURSOR)


async def test_version_guard_refuses_stale_edit(client: LanguageClient):
    open_doc(client)
    fut = await send(client.workspace_execute_command_async(types.ExecuteCommandParams(
        command="diffill.fillInTheMiddle",
        arguments=[{"uri": URI, "position": {"line": CURSOR[0], "character": CURSOR[1]}}],
    )))
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=2),
        content_changes=[types.TextDocumentContentChangePartial(
            range=types.Range(start=types.Position(0, 0), end=types.Position(0, 0)), text="# edited\n")],
    ))
    result = plain(await fut)
    assert result["applied"] is False
    assert "document changed" in result["reason"]
    assert client.edits == []
    assert any("changed" in m.message for m in client.messages)


@pytest.mark.parametrize(
    "uri,line,character",
    [
        ("file:///nope.py", 0, 0),  # unknown document
        (URI, 99, 0),  # line past the end
        (URI, 0, 40),  # character past the end of the line
    ],
)
async def test_bad_params_get_errors(client: LanguageClient, uri: str, line: int, character: int):
    open_doc(client)
    with pytest.raises(JsonRpcException) as err:
        await client.text_document_inline_completion_async(inline_params(line, character, uri=uri))
    assert err.value.code == -32602
    with pytest.raises(JsonRpcException):
        await client.workspace_execute_command_async(types.ExecuteCommandParams(
            command="diffill.fillInTheMiddle",
            arguments=[{"uri": uri, "position": {"line": line, "character": character}}]))
    assert (await stats(client))["requests"] == 0  # still alive


async def test_invalid_utf16_position(client: LanguageClient):
    open_doc(client, "s = '\U0001F60B'\nx = 1\n")
    with pytest.raises(JsonRpcException) as err:
        await client.text_document_completion_async(types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=URI), position=types.Position(0, 6)))
    assert err.value.code == -32602
    with pytest.raises(JsonRpcException):
        await client.workspace_execute_command_async(types.ExecuteCommandParams(
            command="diffill.fillInTheMiddle", arguments=["not an object"]))
    # past the emoji (two UTF-16 units) is fine
    await client.text_document_inline_completion_async(inline_params(0, 7))


async def test_unknown_settings_are_reported(client: LanguageClient):
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        settings={"diffill": {"bogusKey": 1, "multiline": "sometimes"}}))
    await stats(client)
    messages = [m.message for m in client.log_messages if m.type == types.MessageType.Warning]
    assert any("bogusKey" in m for m in messages), messages
    assert any("multiline" in m for m in messages), messages


@pytest_lsp.fixture(config=CONFIG)
async def broken_client(lsp_client: LanguageClient):
    await start(lsp_client, {"model": "/nonexistent/model", "device": "cpu", "debounceMs": 0})
    yield
    await lsp_client.shutdown_session()


async def test_missing_model_is_reported_not_fatal(broken_client: LanguageClient):
    open_doc(broken_client)
    result = await broken_client.text_document_inline_completion_async(inline_params(*CURSOR))
    assert list(result.items) == []
    assert any(m.type == types.MessageType.Error for m in broken_client.messages)
    states = [s["state"] for s in broken_client.statuses]
    assert "error" in states
    assert (await stats(broken_client))["errors"] == 1


@pytest_lsp.fixture(config=CONFIG)
async def utf8_client(lsp_client: LanguageClient, tiny_model_dir):
    lsp_client.init_result = await start(lsp_client, base_options(tiny_model_dir), ["utf-8", "utf-16"])  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


async def test_utf8_positions_when_offered(utf8_client: LanguageClient):
    caps = utf8_client.init_result.capabilities  # type: ignore[attr-defined]
    assert caps.position_encoding in (types.PositionEncodingKind.Utf8, "utf-8")
    open_doc(utf8_client, "é = 1\n")
    with pytest.raises(JsonRpcException):  # inside the two UTF-8 bytes of é
        await utf8_client.text_document_inline_completion_async(inline_params(0, 1))
    await utf8_client.text_document_inline_completion_async(inline_params(0, 2))


async def test_model_reload_on_settings_change_and_log_file(client: LanguageClient, tiny_engine, tmp_path):
    open_doc(client)
    await client.text_document_inline_completion_async(inline_params(*CURSOR))
    log_file = tmp_path / "server.log"
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        settings={"diffill": {"threads": 2, "logFile": str(log_file)}}))
    result = await client.text_document_inline_completion_async(inline_params(*CURSOR))
    states = [s["state"] for s in client.statuses]
    # load, (a request), reload, request
    assert without_busy(states) == ["loading", "ready", "loading", "ready"], states
    prefix, suffix = split_at(TEXT, *CURSOR)
    want = expected_middle(tiny_engine, prefix, suffix)
    assert [i.insert_text for i in result.items][:1] == ([want] if want else [])
    s = await stats(client)
    assert s["completed"] == 2  # the cache was cleared with the reload
    assert log_file.exists() and "model" in log_file.read_text()


BUNDLED = os.path.join(os.path.dirname(__file__), "..", "engine", "models", "diffill-tiny")


@pytest_lsp.fixture(config=CONFIG)
async def bundled_client(lsp_client: LanguageClient):
    await start(lsp_client, {"device": "cpu", "debounceMs": 0, "maxNewTokens": 16})
    yield
    await lsp_client.shutdown_session()


@pytest.mark.skipif(not os.path.isdir(BUNDLED), reason="bundled model not present yet")
async def test_bundled_model_default(bundled_client: LanguageClient):
    text = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return \n"
    open_doc(bundled_client, text)
    result = await bundled_client.text_document_inline_completion_async(inline_params(5, 11))
    states = [s for s in bundled_client.statuses if s["state"] == "ready"]
    assert states and "diffill-tiny" in states[0]["model"]
    s = await stats(bundled_client)
    assert s["completed"] == 1 and s["errors"] == 0
    for item in result.items:
        assert item.insert_text.strip() and "\n" not in item.insert_text


async def test_fill_cancelled_while_the_editor_applies_its_edit_is_quiet(client: LanguageClient):
    """The user cancels just as the editor answers workspace/applyEdit: the late
    answer is dropped, not reported as an "Error in server" (pygls#621)."""
    open_doc(client)

    def cancel_then_apply(params):
        client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="fill-late"))
        return types.ApplyWorkspaceEditResult(applied=True)

    client.on_apply_edit = cancel_then_apply
    fut = await send(client.protocol.send_request_async(types.WORKSPACE_EXECUTE_COMMAND, types.ExecuteCommandParams(
        command="diffill.fillInTheMiddle",
        arguments=[{"uri": URI, "position": {"line": CURSOR[0], "character": CURSOR[1]}}]), msg_id="fill-late"))
    with pytest.raises(JsonRpcException) as err:
        await fut
    assert err.value.code == -32800
    await stats(client)  # the answer to applyEdit has been handled by now
    assert len(client.edits) == 1
    assert not [m for m in client.messages if m.type == types.MessageType.Error], client.messages


async def test_fill_after_close_and_reopen_with_the_same_version_applies_nothing(client: LanguageClient):
    """Editors may restart version numbers when a file is reopened: the same
    number with other text is another document, and the edit is not sent.
    (Closing cancels the fill; if the engine had already finished, the text
    comparison in fill_command.py refuses it.)"""
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        settings={"diffill": {"maxNewTokens": 64, "steps": 64}}))
    open_doc(client)

    def reopen() -> None:
        client.on_draft = None
        client.text_document_did_close(types.DidCloseTextDocumentParams(
            text_document=types.TextDocumentIdentifier(uri=URI)))
        open_doc(client, "# rewritten elsewhere\n" + TEXT, version=1)

    client.on_draft = reopen
    result = plain(await client.workspace_execute_command_async(types.ExecuteCommandParams(
        command="diffill.fillInTheMiddle",
        arguments=[{"uri": URI, "position": {"line": CURSOR[0], "character": CURSOR[1]}}])))
    assert result["applied"] is False and ("changed" in result["reason"] or "cancelled" in result["reason"]), result
    assert client.edits == []


async def test_cancelled_fill_command_applies_nothing(client: LanguageClient):
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        settings={"diffill": {"maxNewTokens": 64, "steps": 64}}))
    open_doc(client)
    await stats(client, reset=True)
    client.on_draft = lambda: client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="fill-1"))
    fut = await send(client.protocol.send_request_async(types.WORKSPACE_EXECUTE_COMMAND, types.ExecuteCommandParams(
        command="diffill.fillInTheMiddle",
        arguments=[{"uri": URI, "position": {"line": CURSOR[0], "character": CURSOR[1]}}]), msg_id="fill-1"))
    await wait_for_draft(client)
    with pytest.raises(JsonRpcException):
        await fut
    await asyncio.sleep(0.3)
    assert client.edits == []
    s = await stats(client)
    assert s["completed"] == 0 and s["engineCancelled"] == 1, s
    with pytest.raises(JsonRpcException):
        await client.workspace_execute_command_async(types.ExecuteCommandParams(command="nope"))


async def test_automatic_suggestions_under_min_confidence_are_held_back(client: LanguageClient):
    """The gate: typing gets nothing the model is not sure enough of; asking always answers."""
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        settings={"diffill": {"minConfidence": 1.0}}))
    open_doc(client)
    await stats(client, reset=True)
    typed = await client.text_document_inline_completion_async(inline_params(*CURSOR, invoked=False))
    asked = await client.text_document_inline_completion_async(inline_params(*CURSOR))
    s = await stats(client)
    assert list(typed.items) == [] and s["gated"] == 1
    if asked.items:  # the random model may write nothing printable
        assert asked.items[0].command.arguments[0]["confidence"] < 1.0  # shown although under the gate


async def test_an_accepted_suggestion_is_counted(client: LanguageClient):
    open_doc(client)
    result = await client.text_document_inline_completion_async(inline_params(*CURSOR))
    command = result.items[0].command if result.items else types.Command(
        "diffill", "diffill.accepted", [{"requestId": "r", "index": 0, "confidence": None, "spans": []}])
    await client.workspace_execute_command_async(types.ExecuteCommandParams(
        command=command.command, arguments=command.arguments))
    assert (await stats(client))["accepted"] == 1
