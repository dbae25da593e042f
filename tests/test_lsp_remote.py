"""The real language server over stdio with a remote backend: settings
``backend``/``url`` send completions to a loopback stand-in of llama.cpp's
llama-server ``/infill`` (tests/remote_standin.py follows its documented API;
it is not llama.cpp)."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient
from remote_standin import StandinServer
from test_lsp_server import CONFIG, CURSOR, inline_params, open_doc, send, start

pytestmark = pytest.mark.slow  # starts the server process


@pytest.fixture(scope="module")
def standin() -> Iterator[StandinServer]:
    with StandinServer("llamacpp") as srv:
        yield srv


@pytest_lsp.fixture(config=CONFIG)
async def client(lsp_client: LanguageClient, standin: StandinServer):
    await start(lsp_client, {"backend": "llamacpp", "url": standin.url, "debounceMs": 0, "multiline": "always",
                             "drafts": True})
    yield
    await lsp_client.shutdown_session()


def _reset(srv: StandinServer) -> None:
    srv.requests.clear()
    srv.hang, srv.api_key, srv.closed_at = False, None, None


async def test_inline_completion_through_the_remote_server(client: LanguageClient, standin: StandinServer):
    _reset(standin)
    open_doc(client)
    result = await client.text_document_inline_completion_async(inline_params(*CURSOR))
    assert [item.insert_text for item in result.items] == ["return a + b"]
    body = standin.requests[-1]
    assert body["input_prefix"].endswith("def save(path, data):\n    ") and body["input_suffix"] == "\n"
    ready = [s for s in client.statuses if s["state"] == "ready"]  # type: ignore[attr-defined]
    assert ready and "llamacpp" in ready[0]["message"]


async def test_cancel_request_closes_the_http_request(client: LanguageClient, standin: StandinServer):
    _reset(standin)
    standin.hang = True
    open_doc(client)
    msg_id = "cancel-remote"
    task = await send(client.protocol.send_request_async(
        types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(*CURSOR), msg_id=msg_id))
    for _ in range(400):
        if standin.requests:
            break
        await asyncio.sleep(0.01)
    assert standin.requests, "the request never reached the server"
    cancelled_at = time.perf_counter()
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
    for _ in range(200):
        if standin.closed_at is not None:
            break
        await asyncio.sleep(0.005)
    standin.hang = False
    with pytest.raises(JsonRpcException):
        await task
    assert standin.closed_at is not None, "the server still holds the HTTP request"
    # over stdio and two processes' event loops: looser than the engine-level 50 ms test
    assert standin.closed_at - cancelled_at < 0.5
