"""Work-done progress never waits for the client (lsp_server/progress.py, issue 27),
document URIs that cannot be kept (lsp_server/documents/uris.py), and client errors
logged in one line (lsp_server/logging_setup.py): in-process, quick."""
from __future__ import annotations

import asyncio
import logging
import sys
from concurrent.futures import Future
from typing import Any

import pytest
from pygls.exceptions import JsonRpcInternalError, JsonRpcInvalidParams

from lsp_server.documents import DocumentStore, RefusedDocumentError, UnknownDocumentError
from lsp_server.documents.uris import fs_path, shown, uri_problem
from lsp_server.logging_setup import DEBUG_ENV, ClientErrorsInOneLine
from lsp_server.progress import ClientProgress


class Protocol:
    """The two things ClientProgress uses of pygls' protocol, recorded."""

    def __init__(self) -> None:
        self.requests: dict[str, Future] = {}
        self.sent: list[tuple[str, Any]] = []
        self._request_futures: dict[str, Future] = {}
        self._result_types: dict[str, Any] = {}

    def send_request(self, method: str, params: Any, msg_id: str) -> Future:
        future: Future = Future()
        self.requests[msg_id] = self._request_futures[msg_id] = future
        self._result_types[msg_id] = object
        return future

    def notify(self, method: str, params: Any) -> None:
        self.sent.append((method, params))

    def kinds(self) -> list[str]:
        return [params.value.kind for _, params in self.sent]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_progress_begins_only_once_the_client_has_created_the_token() -> None:
    protocol = Protocol()
    progress = ClientProgress(protocol, lambda: True)  # type: ignore[arg-type]
    token = progress.begin("loading")
    progress.report(token, "half")
    await settle()
    assert token is not None and protocol.sent == []  # the work went on; nothing sent yet
    progress.report(token, "most")
    [future] = protocol.requests.values()
    future.set_result(None)
    await settle()
    assert protocol.kinds() == ["begin", "report"] and protocol.sent[1][1].value.message == "most"
    progress.end(token, "done")
    assert protocol.kinds() == ["begin", "report", "end"] and len(progress) == 0


async def test_work_over_before_the_answer_begins_and_ends_at_once() -> None:
    protocol = Protocol()
    progress = ClientProgress(protocol, lambda: True)  # type: ignore[arg-type]
    token = progress.begin("loading")
    progress.end(token, "loaded")
    [future] = protocol.requests.values()
    future.set_result(None)
    await settle()
    assert protocol.kinds() == ["begin", "end"] and len(progress) == 0


async def test_an_unanswered_create_times_out_and_is_forgotten() -> None:
    protocol = Protocol()
    progress = ClientProgress(protocol, lambda: True, timeout_s=0.05)  # type: ignore[arg-type]
    token = progress.begin("indexing")
    await asyncio.sleep(0.2)
    assert len(progress) == 0 and protocol._request_futures == {} and protocol._result_types == {}
    progress.report(token, "late")
    progress.end(token, "late")
    assert protocol.sent == []


async def test_an_error_answer_means_no_progress() -> None:
    protocol = Protocol()
    progress = ClientProgress(protocol, lambda: True)  # type: ignore[arg-type]
    token = progress.begin("loading")
    [future] = protocol.requests.values()
    future.set_exception(JsonRpcInternalError("no"))
    await settle()
    progress.end(token, "done")
    assert protocol.sent == [] and len(progress) == 0


def test_no_progress_for_a_client_without_it() -> None:
    progress = ClientProgress(Protocol(), lambda: False)  # type: ignore[arg-type]
    assert progress.begin("loading") is None


@pytest.mark.parametrize(("uri", "reason"), [
    ("file:///ws/s\ud800.py", "surrogate"),
    ("untitled:\udfff", "surrogate"),
    ("file:///ws/a\x00.py", "NUL"),
    ("file:///ws/a%00.py", "NUL"),
])
def test_uris_that_cannot_be_kept(uri: str, reason: str) -> None:
    problem = uri_problem(uri)
    assert problem is not None and reason in problem
    assert fs_path(uri) is None
    shown(uri).encode("utf-8")  # safe to log and to show


@pytest.mark.parametrize("uri", ["file:///ws/caf%C3%A9.py", "file:///ws/%FF.py", "untitled:Untitled-1",
                                 "vscode-notebook-cell:/nb.ipynb#W0"])
def test_uris_that_are_kept(uri: str) -> None:
    assert uri_problem(uri) is None


def test_a_refused_document_is_told_once_and_forgotten_at_close() -> None:
    store = DocumentStore()
    uri = "file:///ws/s\ud800.py"
    with pytest.raises(RefusedDocumentError) as first:
        store.open(uri, "z = 1\n", 1, "python")
    with pytest.raises(RefusedDocumentError) as again:
        store.open(uri, "z = 1\n", 1, "python")
    assert first.value.first and not again.value.first and len(store) == 0
    with pytest.raises(RefusedDocumentError):
        store.get(uri)
    store.close(uri)
    with pytest.raises(UnknownDocumentError) as unknown:
        store.get(uri)
    assert not isinstance(unknown.value, RefusedDocumentError)


def _record(exc: Exception) -> logging.LogRecord:
    try:
        raise exc
    except Exception:  # noqa: BLE001 - any exception: its exc_info is what the record needs
        info = sys.exc_info()
    return logging.LogRecord("pygls.protocol.json_rpc", logging.ERROR, __file__, 1,
                             'Exception occurred for message "%s"', ("7",), info)


def test_client_errors_are_one_line_unless_debugging(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    only = ClientErrorsInOneLine()
    record = _record(JsonRpcInvalidParams("invalid position: line 9 is past the end"))
    assert only.filter(record) and record.exc_info is None and record.levelno == logging.WARNING
    assert record.getMessage() == ('Exception occurred for message "7": answered with error -32602: '
                                   "invalid position: line 9 is past the end")
    fault = _record(KeyError("a server fault keeps its traceback"))
    assert only.filter(fault) and fault.exc_info is not None
    deserialize = logging.LogRecord("pygls.protocol.json_rpc", logging.ERROR, __file__, 1,
                                    "Unable to deserialize message\n%s", ("Traceback ...",), None)
    assert not only.filter(deserialize)
    monkeypatch.setenv(DEBUG_ENV, "1")
    kept = _record(JsonRpcInvalidParams("x"))
    assert only.filter(kept) and kept.exc_info is not None and only.filter(deserialize)


async def test_a_server_fault_answers_without_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    """pygls sent a -32603 with the Python traceback in ``data`` (the surrogate URI's
    diffill/context answer): the log keeps it, the client gets one line."""
    import json
    import threading

    from pygls.lsp.server import LanguageServer

    from lsp_server.pygls_internals import HookedProtocol
    from lsp_server.transport import PipeReader, message_loop

    class Collect:
        def __init__(self) -> None:
            self.messages: list[dict] = []

        def write(self, data: bytes) -> None:
            self.messages.append(json.loads(data.split(b"\r\n\r\n", 1)[1]))

        def close(self) -> None:
            pass

    async def answer() -> dict:
        server = LanguageServer("fault-test", "0", protocol_cls=HookedProtocol)

        @server.feature("test/boom")
        def boom(params: Any) -> None:
            raise KeyError("a bug")

        out = Collect()
        server.protocol.set_writer(out)
        stream = asyncio.StreamReader()
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "test/boom", "params": {}}).encode()
        stream.feed_data(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        stream.feed_eof()
        await message_loop(threading.Event(), PipeReader(stream), server.protocol)
        await settle()
        (response,) = [m for m in out.messages if m.get("id") == 1]
        return response["error"]

    monkeypatch.delenv(DEBUG_ENV, raising=False)
    error = await answer()
    assert error["code"] == -32603 and "a bug" in error["message"] and "data" not in error, error
    monkeypatch.setenv(DEBUG_ENV, "1")
    assert "traceback" in (await answer())["data"]
