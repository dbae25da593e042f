"""`diffill serve` wiring: the subcommand exists and TCP listens on 127.0.0.1."""
from __future__ import annotations

import asyncio
import os
import socket
import sys

from lsprotocol import types
from pygls.lsp.client import LanguageClient

from engine.cli.main import build_parser


def test_serve_subcommand_registered():
    args = build_parser().parse_args(["serve", "--tcp", "1234", "--model", "m", "--log-file", "x.log"])
    assert args.tcp == 1234 and args.model == "m" and args.log_file == "x.log"
    assert callable(args.func)


def test_bench_lsp_registered():
    args = build_parser().parse_args(["bench", "lsp", "--requests", "3", "--out", "o.json"])
    assert args.requests == 3 and args.func.__name__ == "run_lsp_bench"


async def test_tcp_server_on_loopback():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lsp_server", "--tcp", str(port), "--model", "/nonexistent", env=env,
        stderr=asyncio.subprocess.DEVNULL)
    try:
        client = LanguageClient("t", "0")
        for _ in range(300):  # the server serves one connection: connect only once it listens
            try:
                await client.start_tcp("127.0.0.1", port)
                break
            except OSError:
                await asyncio.sleep(0.1)
        result = await asyncio.wait_for(client.initialize_async(types.InitializeParams(
            capabilities=types.ClientCapabilities())), 30)
        assert result.capabilities.inline_completion_provider is not None
        await client.shutdown_async(None)
        client.exit(None)
        await client.stop()
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()
