"""The stdio transport (lsp_server/transport.py) in-process: framing recovery and
an answer for every malformed request.  Regression tests for what the fuzzer
(tests/test_lsp_fuzz.py) found in pygls' own message loop."""
from __future__ import annotations

import asyncio
import json
import os
import threading
from typing import Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from lsp_server.transport import OVERLONG_LINE, FrameReader, Oversized, PipeReader, message_loop


def frame(body: bytes | dict | list, length: int | None = None, header: bytes = b"Content-Length") -> bytes:
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    return header + b": %d\r\n\r\n" % (len(body) if length is None else length) + body


def request(msg_id: Any, method: str, params: Any = None, **extra: Any) -> dict:
    message = {"jsonrpc": "2.0", "id": msg_id, "method": method, **extra}
    if params is not None:
        message["params"] = params
    return message


class Collect:
    """A pygls writer that keeps the bodies it is given."""

    def __init__(self) -> None:
        self.messages: list[dict] = []

    def write(self, data: bytes) -> None:
        self.messages.append(json.loads(data.split(b"\r\n\r\n", 1)[1]))

    def close(self) -> None:
        pass

    def response(self, msg_id: Any) -> dict:
        (found,) = [m for m in self.messages if "method" not in m and m.get("id") == msg_id]
        return found


def make_server() -> tuple[LanguageServer, asyncio.Event]:
    server = LanguageServer("transport-test", "0")
    release = asyncio.Event()

    @server.feature("test/echo")
    def echo(params: Any) -> Any:
        return "no params" if params is None else "echo"  # (pygls wraps objects in namedtuples)

    @server.feature("test/wait")
    async def wait(params: Any) -> str:
        await release.wait()
        return "done"

    return server, release


async def run(data: bytes, settle: float = 0.05) -> Collect:
    """Feed ``data`` to a fresh server's message loop; the answers it wrote."""
    server, _ = make_server()
    out = Collect()
    server.protocol.set_writer(out)
    stream = asyncio.StreamReader()
    stream.feed_data(data)
    stream.feed_eof()
    await message_loop(threading.Event(), PipeReader(stream), server.protocol)
    await asyncio.sleep(settle)  # let async handlers answer
    return out


async def test_request_with_bad_params_gets_invalid_params():
    # pygls' loop raised while structuring and sent nothing: the client waited forever
    out = await run(frame(request(1, types.TEXT_DOCUMENT_INLINE_COMPLETION, {"position": {"line": -1}})))
    error = out.response(1)["error"]
    assert error["code"] == -32602 and "position" in error["message"]


async def test_custom_request_without_params_is_served():
    out = await run(frame(request(1, "test/echo")))
    assert out.response(1)["result"] == "no params"


async def test_malformed_envelopes_are_answered():
    data = b"".join([
        frame(b'{"jsonrpc": "2.0", "id": 1,'),  # not JSON: ParseError, id unknown
        frame(request(2, "test/echo", jsonrpc="1.0")),
        frame(request([3], "test/echo")),  # an id of the wrong type: answered with id null
        frame([request(4, "test/echo"), {"jsonrpc": "2.0", "method": "x"}]),  # LSP has no batches
        frame(b"[" * 100_000),  # RecursionError in the parser
        frame(request(5, 42)),
        frame(b'{"jsonrpc": "2.0", "id": NaN, "method": "test/echo"}'),  # NaN cannot be echoed in JSON
    ])
    out = await run(data)
    nulls = [m["error"]["code"] for m in out.messages if m.get("id") is None]
    assert nulls.count(-32700) == 2 and nulls.count(-32600) == 2, nulls
    assert out.response(2)["error"]["code"] == -32600
    assert out.response(4)["error"]["code"] == -32600
    assert out.response(5)["error"]["code"] == -32600


async def test_too_short_content_length_loses_only_that_message():
    body = json.dumps(request(1, "test/echo", {})).encode()
    data = frame(body, length=len(body) - 4) + frame(request(2, "test/echo", {}))
    out = await run(data)
    assert out.messages[0]["id"] is None and out.messages[0]["error"]["code"] == -32700
    assert out.response(2)["result"] == "echo"


async def test_too_long_content_length_recovers_both_messages():
    for extra in (3, 25, 40):  # inside the next header line, past it, into the next body
        body = json.dumps(request(1, "test/echo", {})).encode()
        data = frame(body, length=len(body) + extra) + frame(request(2, "test/echo", {"pad": "x" * 30}))
        out = await run(data)
        assert out.response(1)["result"] == "echo", extra
        assert out.response(2)["result"] == "echo", extra


async def test_header_variants_and_junk_between_frames():
    body = json.dumps(request(1, "test/echo", {})).encode()
    data = (b"junk line\r\n" + frame(body, header=b"content-length")
            + b"}}glued junk" + frame(request(2, "test/echo", {}))
            + b"Content-Length:  %d \n\n" % len(body) + body.replace(b'"id": 1', b'"id": 3'))
    out = await run(data)
    assert [out.response(i)["result"] for i in (1, 2, 3)] == ["echo"] * 3


async def test_absurd_content_length_is_junk_not_a_crash():
    # int() refuses a 5000-digit string: that ended the message loop (and the server)
    data = b"Content-Length: " + b"9" * 5000 + b"\r\n\r\n" + frame(request(1, "test/echo", {}))
    out = await run(data)
    assert out.response(1)["result"] == "echo"


async def test_stray_response_leaves_the_request_alone():
    # A "response" with the id of the client's own pending request: pygls popped that
    # request's future, so a later $/cancelRequest could not find it and it hung.
    server, release = make_server()
    out = Collect()
    server.protocol.set_writer(out)
    stream = asyncio.StreamReader()
    stream.feed_data(frame(request(7, "test/wait", {})) + frame({"jsonrpc": "2.0", "id": 7, "result": None})
                     + frame({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 7}}))
    stream.feed_eof()
    await message_loop(threading.Event(), PipeReader(stream), server.protocol)
    await asyncio.sleep(0.05)
    assert out.response(7)["error"]["code"] == -32800  # cancelled, as asked
    release.set()


async def test_frame_reader_skips_overlong_lines_and_bodies():
    stream = asyncio.StreamReader(limit=64)
    body = b'{"a": 1}'
    stream.feed_data(b"x" * 500 + b"\r\n" + frame(b"y" * 200) + frame(body))
    stream.feed_eof()
    reader = PipeReader(stream)
    frames = FrameReader(reader, max_body=100)
    assert await frames.read() == Oversized(200)
    assert await frames.read() == body
    assert await frames.read() is None


async def test_an_oversized_header_is_answered_before_its_body_arrives():
    """Issue 27: the id-null answer came only when the input ended (the reader waited for
    the promised bytes); now it comes at once, and the next header is read whatever
    arrived between (a short body, or the whole oversized one, discarded as it came)."""
    for between in (b'{"jsonrpc": "2.0", "id": 9, "method": "test/echo", "params": {}}', b"z" * 5000 + b"\n" * 3):
        stream = asyncio.StreamReader()
        frames = FrameReader(PipeReader(stream), max_body=1000)
        stream.feed_data(b"Content-Length: 300000000\r\n\r\n")
        assert await asyncio.wait_for(frames.read(), 5) == Oversized(300000000)
        for i in range(0, len(between), 7):  # in pieces, as a pipe delivers it
            stream.feed_data(between[i:i + 7])
        stream.feed_data(frame(request(2, "test/echo", {})))
        body = await asyncio.wait_for(frames.read(), 5)
        assert json.loads(body)["id"] == 2


async def test_too_large_message_is_answered_and_the_next_ones_are_served():
    data = b"Content-Length: 300000000\r\n\r\n" + b'{"padding": "' + b"p" * 50 + b'"}' \
        + frame(request(1, "test/echo", {})) + frame(request(2, "test/echo", {}))
    out = await run(data)
    assert out.messages[0]["id"] is None and out.messages[0]["error"]["code"] == -32600
    assert "300000000 bytes" in out.messages[0]["error"]["message"]
    assert out.response(1)["result"] == "echo" and out.response(2)["result"] == "echo"


async def test_pipe_reader_turns_an_overlong_line_into_junk():
    stream = asyncio.StreamReader(limit=16)
    stream.feed_data(b"z" * 100 + b"\nok\n")
    stream.feed_eof()
    reader = PipeReader(stream)
    assert await reader.readline() == OVERLONG_LINE
    assert await reader.readline() == b"ok\n"


def test_server_exits_at_once_when_stdin_is_dev_null() -> None:
    """/dev/null cannot be watched by epoll: the server must read it in a thread
    and stop at its end, not wait forever."""
    import subprocess
    import sys

    with open(os.devnull, "rb") as devnull:
        proc = subprocess.run([sys.executable, "-m", "lsp_server"], stdin=devnull, capture_output=True,
                              timeout=60, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
