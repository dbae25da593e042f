"""The remote backends against the real llama.cpp ``llama-server`` (issue 26), not a stand-in.

The server is built by ``.ci/install-llama-server.sh`` (CI always runs it; these
tests skip, saying so, where it is absent) and serves the tiny FIM model of
tests/llama_tiny.py, whose answer is known: `` return a + b`` then more lines
for ever.  What the server received and did is read back from its own
``GET /slots`` (the prompt as it laid it out, the request's parameters, the
tokens it generated), so the tests check llama.cpp's behaviour, not ours twice.
One server per module where tests only read; the kill-and-restart test has its own.
"""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_lsp
from llama_tiny import FIRST_LINE, LlamaServer, generated_tokens, require_binary, write_model
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.uris import from_fs_path
from pytest_lsp import ClientServerConfig, LanguageClient

from lsp_server.features.common import plain
from tests.test_lsp_context import MAIN, context_at, make_workspace, open_main, wait_indexed
from tests.test_lsp_server import SERVER_ENV, attach_recorders, capabilities, send

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
ANSWER = FIRST_LINE.lstrip(" ")  # the model's first line, its leading space dropped after an indented prefix
CONFIG = ClientServerConfig(server_command=[sys.executable, "-m", "lsp_server"], server_env=SERVER_ENV)


@pytest.fixture(scope="session")
def llama_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(llama-server, the tiny model's GGUF), made once per session."""
    exe = require_binary()
    return exe, write_model(tmp_path_factory.mktemp("llama-tiny") / "tiny-fim.gguf", exe)


@pytest.fixture(scope="module")
def llama(llama_model: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    exe, model = llama_model
    with LlamaServer(exe, model, tmp_path_factory.mktemp("llama-log") / "server.log") as server:
        yield server


def _diffill(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "diffill", *args], input=stdin, capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


def _jsonl(*records: dict) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def test_the_server_answers_the_model_as_designed(llama: LlamaServer) -> None:
    """A direct FIM call: what every other test relies on."""
    answer = llama.post("/infill", {"input_prefix": "def add(a, b):\n    ", "input_suffix": "\n", "n_predict": 12})
    assert answer["content"].startswith(FIRST_LINE + "\n    pass\n"), answer
    assert llama.get("/props")["default_generation_settings"]["n_ctx"] == 8192


def test_fill_stops_at_the_line_break_and_drops_the_leading_space(llama: LlamaServer, tmp_path: Path) -> None:
    """Defects 3, 5 and 8: a single line is stopped by the server at its line break (the
    tokens it generated, from /slots), a block runs to its limit, the model's leading space
    after the indentation is dropped, and the record names streamed pieces."""
    proc = _diffill("fill", "--jsonl", "--backend", "llamacpp", "--url", llama.url, stdin=_jsonl(
        {"prefix": "def add(a, b):\n    ", "suffix": "\n", "max_new_tokens": 24, "id": "block"},
        # an indented blank line: no stop rule (a model may begin with line breaks); the stream is closed
        {"prefix": "def add(a, b):\n    ", "suffix": "\n", "max_new_tokens": 200, "single_line": True},
        # text on the cursor's line: llama.cpp is told to stop at the line break
        {"prefix": "def add(a, b):\n    total = ", "suffix": "\n", "max_new_tokens": 200, "single_line": True}))
    assert proc.returncode == 0, proc.stderr
    block, blank, line = (json.loads(x) for x in proc.stdout.splitlines())
    assert block["middle"].startswith(ANSWER + "\n    pass\n") and block["tokens"] == 24
    for one in (blank, line):
        assert one["middle"] == ANSWER and one["tokens"] <= 5  # return, a, +, b and the line break
        assert "pieces" in one and "forwards" not in one
    task = llama.last_task()
    assert task["params"]["stop"] == ["\n"] and task["generated"] == FIRST_LINE  # the line break ended it
    # the one-off form, at an indented line of a file
    source = tmp_path / "m.py"
    source.write_text("def add(a, b):\n    \n")
    one = _diffill("fill", str(source), "--line", "2", "--col", "5", "--single-line", "--backend", "llamacpp",
                   "--url", llama.url)
    assert one.returncode == 0 and one.stdout == ANSWER, one.stderr


def test_openai_kind_on_llama_server_is_named_and_every_prompt_fits(llama: LlamaServer) -> None:
    """Defects 4 and 6: llama-server's /v1/completions has no window of its own (a prompt over
    its context is HTTP 400) and ignores the suffix; diffill cuts the prompt to the served
    context and tells the user, once and by name, to use the llamacpp kind."""
    prefix = "".join(f"x_{i} = {i}\n" for i in range(1500)) + "def add(a, b):\n    "  # ~15,000 tokens here
    direct = llama.post("/v1/completions", {"prompt": prefix, "max_tokens": 4})
    assert direct.get("status") == 400 and "context" in str(direct["error"]), direct  # what was seen unwindowed
    proc = _diffill("fill", "--jsonl", "--backend", "openai", "--model", "tiny", "--url", llama.url, stdin=_jsonl(
        {"prefix": prefix, "suffix": "\n", "single_line": True, "id": 1},
        {"prefix": "def add(a, b):\n    ", "suffix": "\n", "single_line": True, "id": 2}))
    assert proc.returncode == 0, proc.stderr
    first, second = (json.loads(x) for x in proc.stdout.splitlines())
    assert first["middle"] == ANSWER and second["middle"] == ANSWER, proc.stdout
    assert proc.stderr.count("ignores the suffix") == 1 and "llamacpp" in proc.stderr
    doctor = _diffill("doctor", "--backend", "openai", "--model", "tiny", "--url", llama.url, "--json")
    report = json.loads(doctor.stdout)
    assert "ignores the suffix" in report["warning"] and report["served_context_tokens"] == "8192 (the server)"


@pytest_lsp.fixture(config=CONFIG)
async def client(lsp_client: LanguageClient, llama: LlamaServer, tmp_path: Path):
    workspace = make_workspace(tmp_path / "ws")
    attach_recorders(lsp_client)
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=capabilities(), initialization_options={
            "backend": "llamacpp", "url": llama.url, "debounceMs": 0, "drafts": True, "maxNewTokens": 64},
        workspace_folders=[types.WorkspaceFolder(uri=from_fs_path(str(workspace)) or "", name="ws")]))
    lsp_client.workspace_root = workspace  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


async def test_serve_completes_fills_sends_context_and_cancels(client: LanguageClient, llama: LlamaServer):
    """Defects 1, 3 and 7 through the language server: the other file's definition reaches
    llama.cpp in input_extra (the prompt it laid out holds it), a one-line suggestion is
    stopped at its line break, the status names the server, the fill command applies the
    line, and a cancelled request stops the server's generation."""
    uri, line, character = await open_main(client)
    await wait_indexed(client, uri, line, character)
    result = await client.text_document_inline_completion_async(types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line=line, character=character),
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked)))
    assert result is not None and [i.insert_text for i in result.items] == [ANSWER]
    task = llama.last_task()
    assert "<|file_sep|>shop/util.py\ndef compute_total(prices, tax_rate):" in task["prompt"], task["prompt"]
    assert task["params"]["stop"] == ["\n"] and task["generated"] == FIRST_LINE
    # after a request the engine is loaded: diffill/context lists pieces within a real budget
    listed = await context_at(client, uri, line, character)
    assert listed["pieces"] and 0 < listed["tokensUsed"] <= listed["tokenBudget"], listed
    statuses = client.statuses  # type: ignore[attr-defined]
    assert any(s["state"] == "loading" and s["message"] == f"connecting to llamacpp server at {llama.url}"
               for s in statuses), statuses
    assert any(s["state"] == "ready" and s["message"] == f"llamacpp server at {llama.url}" for s in statuses)

    # the fill command on a new indented line
    text = MAIN + "0.2)\n\n\ndef add(a, b):\n    "
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
        content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)]))
    last = text.split("\n")
    fill = plain(await client.workspace_execute_command_async(types.ExecuteCommandParams(
        command="diffill.fillInTheMiddle",
        arguments=[{"uri": uri, "position": {"line": len(last) - 1, "character": len(last[-1])}}])))
    assert fill["applied"] is True and fill["text"].startswith(ANSWER), fill

    # cancellation: a long block, cancelled while llama.cpp generates it
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        settings={"diffill": {"backend": "llamacpp", "url": llama.url, "debounceMs": 0, "drafts": True,
                              "maxNewTokens": 4000, "multiline": "always", "contextEnabled": False}}))
    client.on_draft = None  # type: ignore[attr-defined]
    first_draft = asyncio.Event()
    client.on_draft = first_draft.set  # type: ignore[attr-defined]
    msg_id = "cancel-real"
    task_future = await send(client.protocol.send_request_async(
        types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=len(last) - 1, character=len(last[-1])),
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked)),
        msg_id=msg_id))
    await asyncio.wait_for(first_draft.wait(), 30)
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
    with pytest.raises(JsonRpcException):
        await task_future
    deadline = time.monotonic() + 10
    while llama.last_task()["is_processing"] and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    stopped = llama.last_task()
    assert not stopped["is_processing"] and stopped["params"]["n_predict"] == 4000
    assert generated_tokens(stopped["generated"]) < 3500, "llama.cpp generated the whole block after the cancel"


async def _inline(client: LanguageClient, uri: str, line: int, character: int) -> list[str]:
    result = await client.text_document_inline_completion_async(types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line=line, character=character),
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked)))
    return [i.insert_text for i in result.items] if result else []


@pytest_lsp.fixture(config=CONFIG)
async def restart_client(lsp_client: LanguageClient, llama_model: tuple[Path, Path], tmp_path: Path):
    exe, model = llama_model
    server = LlamaServer(exe, model, tmp_path / "server.log").start()
    try:  # the server is stopped whatever happens here: it would outlive the test run
        attach_recorders(lsp_client)
        await lsp_client.initialize_session(types.InitializeParams(
            capabilities=capabilities(), initialization_options={
                "backend": "llamacpp", "url": server.url, "debounceMs": 0, "contextEnabled": False,
                "remoteConnectTimeoutMs": 2000, "cacheSize": 0}))
        lsp_client.llama = server  # type: ignore[attr-defined]
        yield
        await lsp_client.shutdown_session()
    finally:
        server.stop()


async def test_serve_survives_llama_server_killed_and_restarted(restart_client: LanguageClient):
    client = restart_client
    server: LlamaServer = client.llama  # type: ignore[attr-defined]
    uri = "file:///tmp/diffill-real/m.py"
    client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
        uri=uri, language_id="python", version=1, text="def add(a, b):\n    ")))
    block = ANSWER + "\n    pass"  # an indented blank line: a block, up to where its scope ends
    assert await _inline(client, uri, 1, 4) == [block]
    server.stop()
    assert await _inline(client, uri, 1, 4) == []
    for _ in range(100):
        if client.messages:  # pytest-lsp records window/showMessage
            break
        await asyncio.sleep(0.02)
    shown = [m.message for m in client.messages]
    assert any("cannot reach the server" in m for m in shown), shown
    server.start()
    assert await _inline(client, uri, 1, 4) == [block]


def test_bench_remote_fim_counts_the_tokens_each_side_generates(llama: LlamaServer, tmp_path: Path) -> None:
    """`diffill bench remote-fim` (docs/BENCHMARKS.md) on two cases: diffill's single-line requests
    generate the line (5 tokens), the direct FIM call without a stop rule its whole n_predict."""
    out = tmp_path / "remote-fim.json"
    proc = _diffill("bench", "remote-fim", "--backend", "llamacpp", "--url", llama.url, "--limit", "2",
                    "--warmup", "1", "--no-progress", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(out.read_text())["summary"]
    assert summary["diffill"]["tokens_median"] == 5 and summary["direct"]["tokens_median"] == 32
    assert summary["same_first_line"] == 2 and "diffill llamacpp, single line" in proc.stdout
