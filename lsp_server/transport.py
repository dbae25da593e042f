"""stdio transport: our own frame reader and message loop (pygls' protocol).

Why not pygls' ``start_io`` / ``run_async``:

- latency: pygls reads stdin through a thread pool (one round trip to a worker
  thread per header line and per body); we read stdin as an asyncio pipe.
- robustness (found by tests/test_lsp_fuzz.py): pygls' loop sends no response
  at all to a request whose params do not fit the LSP types, whose id,
  jsonrpc or method member is malformed, or that omits ``params`` for a custom
  method, so the client waits forever; it answers no ``ParseError``; it only
  knows the exact header ``Content-Length: N\r\n`` at the start of a line, so
  after one frame whose Content-Length is too short the rest of that body is
  glued to the next header line and every later message is lost; a header
  line over the stream limit ends the server; and a client "response" with
  the id of the client's own pending request resolves (and forgets) that
  request's future.

Here every message with a ``method`` and an ``id`` gets exactly one response
(an error if it is malformed; id null when the id itself is unusable); a body
that is not JSON gets a ``ParseError`` with id null; a header is recognised at
the *end* of a line, case-insensitively (a JSON body never holds a raw line
break inside a string, so after a too-short frame we resynchronise at the
next real header); and a body that does not parse but holds the start of the
next frame (a too-long Content-Length swallowed it) is cut there and the rest
is read again as a frame.  A Content-Length over ``MAX_MESSAGE_BYTES`` cannot
be honoured: it is answered at once (-32600, id null), and the input is
discarded as it arrives, never buffered, up to the next Content-Length header,
so only that message is lost whether its body follows or not.  A too-long
Content-Length under the limit with nothing sent after it cannot be recovered
by any server: it cannot tell a lying client from a slow one, and waits for the
promised bytes.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
import stat
import sys
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.io_ import StdinAsyncReader, StdoutWriter
from pygls.protocol import JsonRPCProtocol
from pygls.server import JsonRPCServer

from lsp_server.pygls_internals import awaits_response, is_shutting_down, send_raw, use_stop_event

log = logging.getLogger(__name__)

#: JSON-RPC error codes
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

#: a Content-Length header at the end of a line (case-insensitive, loose spacing; at most
#: 12 digits: int() refuses thousands of them, and no body is near a terabyte)
_HEADER_AT_END = re.compile(rb"content-length[ \t]*:[ \t]*(\d{1,12})[ \t]*\r?\n?\Z", re.IGNORECASE)
#: a complete header line anywhere in a body (where a too-long frame swallowed the next one)
_HEADER_INSIDE = re.compile(rb"content-length[ \t]*:[ \t]*\d+[ \t]*\r?\n", re.IGNORECASE)
_HEADER_NAME = b"content-length"
#: a Content-Length over this is refused: its bytes are discarded as they come, never buffered
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
#: returned for a header line over the stream's line limit: junk, not a header
OVERLONG_LINE = b"\x00overlong line\x00\n"
#: bytes read at most at a time while discarding
_DISCARD_CHUNK = 1 << 20
#: bytes of a line kept while discarding: enough for a Content-Length header at its end
_HEADER_TAIL = 256


class AsyncReader(Protocol):
    """pygls' reader interface (awaitables: pygls' own stdin reader returns futures),
    and ``read_some`` for discarding input as it comes."""

    def readline(self) -> Awaitable[bytes]: ...

    def readexactly(self, n: int) -> Awaitable[bytes]: ...

    def read_some(self, n: int) -> Awaitable[bytes]:
        """Up to ``n`` bytes, as soon as any are there (b"" at EOF)."""
        ...


class PipeReader:
    """``asyncio.StreamReader`` with pygls' reader interface (b"" at EOF)."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self._stream = stream

    async def readline(self) -> bytes:
        try:
            return await self._stream.readline()
        except ValueError:  # a line over the limit: StreamReader dropped it; keep going
            return OVERLONG_LINE

    async def readexactly(self, n: int) -> bytes:
        try:
            return await self._stream.readexactly(n)
        except asyncio.IncompleteReadError as exc:
            return exc.partial

    async def read_some(self, n: int) -> bytes:
        return await self._stream.read(n)


class ThreadReader(StdinAsyncReader):
    """pygls' stdin reader (a thread per read: for a regular file or /dev/null,
    which the event loop cannot watch), with ``read_some``."""

    def read_some(self, n: int) -> Awaitable[bytes]:
        read1 = getattr(self.stdin, "read1", self.stdin.read)
        return self.loop.run_in_executor(self.executor, read1, n)


@dataclass(frozen=True)
class Oversized:
    """A header whose Content-Length is over the limit: that message is refused, and
    the input up to the next Content-Length header is discarded."""

    length: int


class FrameReader:
    """Reads LSP frames (header lines, blank line, body) with resynchronisation.

    Junk lines are skipped; the last Content-Length header before the blank
    line wins; bytes can be pushed back (``unread``) to be read again.
    """

    def __init__(self, reader: AsyncReader, max_body: int = MAX_MESSAGE_BYTES) -> None:
        self._reader = reader
        self._pending = b""
        self.max_body = max_body
        #: an oversized header was refused: discard up to the next header before reading on
        self._resync = False

    def unread(self, data: bytes) -> None:
        self._pending = data + self._pending

    async def _readline(self) -> bytes:
        if self._pending:
            i = self._pending.find(b"\n")
            if i >= 0:
                line, self._pending = self._pending[: i + 1], self._pending[i + 1:]
                return line
            line, self._pending = self._pending, b""
            return line + await self._reader.readline()
        return await self._reader.readline()

    async def _readexactly(self, n: int) -> bytes:
        head, self._pending = self._pending[:n], self._pending[n:]
        if len(head) < n:
            head += await self._reader.readexactly(n - len(head))
        return head

    async def _read_some(self, n: int) -> bytes:
        if self._pending:
            chunk, self._pending = self._pending[:n], self._pending[n:]
            return chunk
        return await self._reader.read_some(n)

    async def _skip_to_header(self) -> bool:
        """Discard input up to the next line that ends with a Content-Length header
        (left to be read as one); False at the end of the input.  Bytes are dropped
        as they arrive: only the end of the current line is kept."""
        tail = b""
        while True:
            chunk = await self._read_some(_DISCARD_CHUNK)
            if not chunk:
                return False
            data = tail + chunk
            start = 0
            while (newline := data.find(b"\n", start)) >= 0:
                line = data[max(start, newline + 1 - _HEADER_TAIL):newline + 1]
                match = _HEADER_AT_END.search(line)
                if match:
                    self.unread(line[match.start():] + data[newline + 1:])
                    return True
                start = newline + 1
            tail = data[start:][-_HEADER_TAIL:]

    async def read(self) -> bytes | Oversized | None:
        """The next body, ``Oversized`` for a header over the limit (the next read
        discards up to the following header), None at the end of the input."""
        if self._resync:
            self._resync = False
            if not await self._skip_to_header():
                return None
        length: int | None = None
        while True:
            line = await self._readline()
            if not line:
                return None
            match = _HEADER_AT_END.search(line)
            if match and line.endswith(b"\n"):
                length = int(match.group(1))
            elif length is not None and not line.strip():
                break
        if length <= self.max_body:
            body = await self._readexactly(length)
            return body if len(body) == length else None
        log.error("refused a message of %d bytes (over %d): discarding the input up to the next "
                  "Content-Length header", length, self.max_body)
        self._resync = True
        return Oversized(length)


class MessageHandler:
    """Turns bodies into pygls messages; answers every malformed request."""

    def __init__(self, protocol: JsonRPCProtocol,
                 error_handler: Callable[[Exception, type[JsonRpcException]], Any] | None = None) -> None:
        self.protocol = protocol
        self.error_handler = error_handler

    def handle(self, raw: Any) -> None:
        """Dispatch one parsed body."""
        if isinstance(raw, dict):
            self.handle_object(raw)
        elif isinstance(raw, list) and raw:
            self.handle_batch(raw)
        else:
            self.reply_error(None, INVALID_REQUEST, "Invalid Request: a message must be a JSON object")

    def parse_failed(self, exc: Exception) -> None:
        self.reply_error(None, PARSE_ERROR, f"Parse error: {_short(exc)}")

    def handle_batch(self, items: list[Any]) -> None:
        """LSP has no batches: each request in one gets an error, nothing runs."""
        answered = False
        for item in items:
            if isinstance(item, dict) and _is_request(item) and _usable_id(item["id"]):
                self.reply_error(item["id"], INVALID_REQUEST, "Invalid Request: LSP does not support batches")
                answered = True
        if not answered:
            self.reply_error(None, INVALID_REQUEST, "Invalid Request: LSP does not support batches")

    def handle_object(self, raw: dict[str, Any]) -> None:
        request = _is_request(raw)
        msg_id = raw.get("id")
        reply_id = msg_id if _usable_id(msg_id) else None
        problem = _envelope_problem(raw)
        if problem is not None:
            if request:
                self.reply_error(reply_id, INVALID_REQUEST, f"Invalid Request: {problem}")
            else:
                log.warning("ignoring a malformed message: %s", problem)
            return
        if request and is_shutting_down(self.protocol) and raw["method"] != "exit":
            self.reply_error(msg_id, INVALID_REQUEST, "Invalid Request: the server is shutting down")
            return
        refuse = getattr(self.protocol, "refuse_request", None)
        refusal = refuse(raw["method"]) if request and refuse is not None else None
        if refusal is not None:  # the lifecycle first: -32002 before initialize, even for bad params
            self.reply_error(msg_id, refusal.code, refusal.message)
            return
        if "method" not in raw and not awaits_response(self.protocol, raw["id"]):
            # a response to no request of ours, e.g. with the id of the client's own
            # request: pygls would resolve (and forget) that request's future
            log.warning("ignoring a response to id %r, which the server never sent", raw["id"])
            return
        if "method" in raw and "params" not in raw:
            raw = {**raw, "params": None}  # JSON-RPC allows this; pygls' untyped messages do not
        self._dispatch(raw, request)

    def _dispatch(self, raw: dict[str, Any], request: bool) -> None:
        """Structure (LSP types) and hand to pygls; an error response if either fails."""
        try:
            message = self.protocol.structure_message(raw)
        except Exception as exc:  # noqa: BLE001 - cattrs errors come wrapped in pygls ones
            if request:
                code = INVALID_PARAMS if isinstance(exc, JsonRpcInvalidParams) else INVALID_REQUEST
                self.reply_error(raw["id"], code,
                                 f"{_code_name(code)} for {raw['method']!r}: {_structure_details(exc)}")
            else:
                log.warning("ignoring a message that does not fit its type: %s", _structure_details(exc))
            return
        try:
            self.protocol.handle_message(message)
        except Exception as exc:
            log.exception("unable to handle message")
            if request:
                self.reply_error(raw["id"], INTERNAL_ERROR, f"Internal error: {_short(exc)}")
            else:
                self._report(exc)

    def reply_error(self, msg_id: Any, code: int, message: str) -> None:
        log.warning("error response to %r: %s", msg_id, message)
        send_raw(self.protocol, {"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": message}})

    def _report(self, exc: Exception) -> None:
        if self.error_handler is not None:
            try:
                self.error_handler(exc, JsonRpcException)
            except Exception:
                log.exception("error handler failed")


def _is_request(raw: dict[str, Any]) -> bool:
    return "method" in raw and "id" in raw


def _usable_id(msg_id: Any) -> bool:
    """JSON-RPC ids are strings or numbers (not booleans, not NaN/Infinity, which JSON
    cannot carry back); anything else is answered with id null."""
    if isinstance(msg_id, float):
        return math.isfinite(msg_id)
    return isinstance(msg_id, (str, int)) and not isinstance(msg_id, bool)


def _envelope_problem(raw: dict[str, Any]) -> str | None:
    """What is wrong with a message's jsonrpc/id/method members, if anything."""
    if raw.get("jsonrpc") != JsonRPCProtocol.VERSION:
        return 'expected "jsonrpc": "2.0"'
    if "method" in raw and not isinstance(raw["method"], str):
        return "method must be a string"
    if "id" in raw and not _usable_id(raw["id"]):
        return "id must be a string or a number"
    if "method" in raw and ("result" in raw or "error" in raw):
        return "a message cannot be both a request and a response"
    if "method" not in raw and "id" not in raw:
        return "neither a request, a notification nor a response"
    return None


def _structure_details(exc: Exception) -> str:
    cause = exc.__cause__ or exc
    try:
        from cattrs import transform_error

        return "; ".join(transform_error(cause, path="$"))[:500]
    except Exception:  # noqa: BLE001 - not a cattrs error
        return _short(cause)


def _code_name(code: int) -> str:
    return {INVALID_PARAMS: "Invalid params", INVALID_REQUEST: "Invalid Request"}.get(code, "Error")


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]


async def message_loop(
    stop: threading.Event,
    reader: AsyncReader,
    protocol: JsonRPCProtocol,
    error_handler: Callable[[Exception, type[JsonRpcException]], Any] | None = None,
) -> None:
    """Read frames and dispatch them until ``stop`` is set or the input ends."""
    frames = FrameReader(reader)
    handler = MessageHandler(protocol, error_handler)
    while not stop.is_set():
        body = await frames.read()
        if isinstance(body, Oversized):  # answered before its bytes are even read
            handler.reply_error(None, INVALID_REQUEST,
                                f"Invalid Request: a message of {body.length} bytes is over the limit of "
                                f"{frames.max_body} bytes; it is discarded up to the next Content-Length header")
            continue
        if body is None:
            break
        _dispatch_body(body, frames, handler)


def _dispatch_body(body: bytes, frames: FrameReader, handler: MessageHandler) -> None:
    raw, error = _parse(body)
    if error is not None:
        cut = _swallowed_frame(body)
        if cut is None:
            handler.parse_failed(error)
            return
        # a too-long Content-Length swallowed the start of the next frame: read
        # that again as a frame, and handle what came before it on its own
        frames.unread(body[cut:])
        raw, error = _parse(body[:cut])
        if error is not None:
            handler.parse_failed(error)
            return
    handler.handle(raw)


def _swallowed_frame(body: bytes) -> int | None:
    """Where the next frame starts inside a body that is not JSON (None: nowhere).

    Either a whole header line is inside, or the body is one JSON object
    followed by the start of one ("Content-Le..."; the rest is still unread).
    """
    match = _HEADER_INSIDE.search(body)
    if match is not None:
        return match.start()
    try:
        text = body.decode("utf-8")
        _, end = json.JSONDecoder().raw_decode(text, len(text) - len(text.lstrip()))
    except Exception:  # noqa: BLE001 - no JSON value at the start
        return None
    end = len(text[:end].encode("utf-8"))
    rest = body[end:].lstrip()
    if rest and _HEADER_NAME.startswith(rest[: len(_HEADER_NAME)].lower()):
        return len(body) - len(rest)
    return None


def _parse(body: bytes) -> tuple[Any, Exception | None]:
    try:
        return json.loads(body), None
    except Exception as exc:  # noqa: BLE001 - ValueError, UnicodeDecodeError, RecursionError
        return None, exc


def _pollable(stream: BinaryIO) -> bool:
    """Whether the event loop can watch ``stream`` (a pipe, socket or terminal).

    ``connect_read_pipe`` accepts a character device such as /dev/null but its
    epoll registration then fails in a callback, and the server would wait forever.
    """
    try:
        fd = stream.fileno()
        mode = os.fstat(fd).st_mode
    except (OSError, ValueError, AttributeError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or (stat.S_ISCHR(mode) and os.isatty(fd))


class QuietWriter:
    """stdout for the protocol; once the server exits, writes are dropped (a fill still
    finishing must not write to a closed stream: "I/O operation on closed file").

    The first write that finds the client gone (it closed the server's stdout:
    a broken pipe) calls ``on_lost`` and drops every later write: the server
    stops there, instead of running the model for requests it can never answer
    and logging a BrokenPipeError for each."""

    def __init__(self, inner: StdoutWriter, on_lost: Callable[[OSError], None] | None = None) -> None:
        self._inner = inner
        self.on_lost = on_lost
        self.closed = False

    def write(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            self._inner.write(data)
        except (BrokenPipeError, ConnectionResetError) as exc:
            self.closed = True
            if self.on_lost is not None:
                self.on_lost(exc)

    def close(self) -> None:
        self.closed = True


def _write_to_devnull(stream: BinaryIO) -> None:
    """Point ``stream``'s descriptor at /dev/null: what is still buffered for a client
    that is gone is dropped at exit instead of raising BrokenPipeError once more."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, stream.fileno())
        finally:
            os.close(devnull)
    except (OSError, ValueError):  # not a real file (tests): nothing is flushed to it later
        pass


def serve_stdio(server: JsonRPCServer, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> int:
    """Run ``server`` over stdin/stdout until the client exits or disconnects.

    Returns the process exit code: 0 after ``shutdown`` + ``exit`` (or at the end of
    the input), 1 after ``exit`` without ``shutdown`` or when the client process died.
    """
    stdin = stdin or sys.stdin.buffer
    stdout = stdout or sys.stdout.buffer
    stop = threading.Event()
    use_stop_event(server, stop)
    writer = QuietWriter(StdoutWriter(stdout))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        this = asyncio.current_task()
        assert this is not None

        def stop_serving() -> None:
            writer.close()
            stop.set()
            loop.call_soon_threadsafe(this.cancel)

        def client_gone() -> None:
            request_exit = getattr(server, "request_exit", None)
            if request_exit is None:
                stop_serving()
            else:  # LSP: exit code 1 unless shutdown was received
                request_exit(0 if is_shutting_down(server.protocol) else 1)

        def output_lost(exc: OSError) -> None:  # on whichever thread wrote
            log.error("the client closed the server's output (%s); exiting", type(exc).__name__)
            _write_to_devnull(stdout)
            try:
                loop.call_soon_threadsafe(client_gone)
            except RuntimeError:  # the loop is closed already: the server is exiting anyway
                pass

        writer.on_lost = output_lost
        server.stop_serving = stop_serving  # type: ignore[attr-defined]
        stream = asyncio.StreamReader(limit=1 << 24)
        reader: AsyncReader
        if _pollable(stdin):
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stream), stdin)
            reader = PipeReader(stream)
        else:  # a regular file or /dev/null: epoll refuses them; read in a thread
            reader = ThreadReader(stdin, server.thread_pool)
        server.protocol.set_writer(writer)
        try:
            await message_loop(stop, reader, server.protocol, server.report_server_error)
        except asyncio.CancelledError:
            if not stop.is_set():
                raise

    try:
        asyncio.run(main())
    except BrokenPipeError:
        log.error("connection to the client lost; shutting down")
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        writer.close()
        server.shutdown()
    code = getattr(server, "exit_code", None)
    return 0 if code is None else code
