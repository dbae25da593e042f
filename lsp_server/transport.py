"""stdio transport without a thread hop per read.

pygls' ``start_io`` reads stdin through a thread pool: every header line and
every body is one round trip to a worker thread.  On a loaded machine each
hop costs scheduling latency that shows up directly in completion latency, so
we read stdin as an asyncio pipe and hand the same message loop
(``pygls.io_.run_async``) an asyncio reader.  Falls back to pygls' reader when
stdin is not a pipe, socket or terminal (e.g. a regular file).
"""
from __future__ import annotations

import asyncio
import logging
import sys
import threading
from typing import BinaryIO

from pygls.io_ import StdinAsyncReader, StdoutWriter, run_async
from pygls.server import JsonRPCServer

log = logging.getLogger(__name__)


class PipeReader:
    """``asyncio.StreamReader`` with pygls' reader interface (b"" at EOF)."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self._stream = stream

    async def readline(self) -> bytes:
        return await self._stream.readline()

    async def readexactly(self, n: int) -> bytes:
        try:
            return await self._stream.readexactly(n)
        except asyncio.IncompleteReadError as exc:
            return exc.partial


def serve_stdio(server: JsonRPCServer, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> None:
    """Run ``server`` over stdin/stdout until the client exits or disconnects."""
    stdin = stdin or sys.stdin.buffer
    stdout = stdout or sys.stdout.buffer
    stop = threading.Event()
    server._stop_event = stop  # noqa: SLF001 - pygls' shutdown() sets it

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stream = asyncio.StreamReader(limit=1 << 24)
        try:
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stream), stdin)
            reader: PipeReader | StdinAsyncReader = PipeReader(stream)
        except (ValueError, OSError):
            reader = StdinAsyncReader(stdin, server.thread_pool)
        server.protocol.set_writer(StdoutWriter(stdout))
        await run_async(stop_event=stop, reader=reader, protocol=server.protocol,
                        logger=log, error_handler=server.report_server_error)

    try:
        asyncio.run(main())
    except BrokenPipeError:
        log.error("connection to the client lost; shutting down")
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.shutdown()
