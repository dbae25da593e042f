"""`diffill serve` wiring: the subcommand exists and TCP listens on 127.0.0.1."""
from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys

import pytest
from lsprotocol import types
from pygls.lsp.client import LanguageClient

from diffill.main import build_parser

#: starts processes or trains/loads models: left out of the quick loop (pytest -m 'not slow and not editor')
pytestmark = pytest.mark.slow


def listening_addresses(port: int) -> list[str]:
    """Local addresses of sockets in LISTEN state on ``port`` (from /proc/net/tcp*)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        with open(table) as f:
            for row in list(f)[1:]:
                local, state = row.split()[1], row.split()[3]
                address, hex_port = local.split(":")
                if state == "0A" and int(hex_port, 16) == port:
                    raw = bytes.fromhex(address)
                    family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
                    # /proc prints each 32-bit word in host (little-endian) order
                    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                    found.append(socket.inet_ntop(family, words))
    return found


def non_loopback_addresses() -> list[str]:
    """This machine's IPv4 addresses other than loopback (none in a network namespace)."""
    out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, check=False).stdout
    return [a for a in out.split() if "." in a and not a.startswith("127.")]


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
        # it listens on loopback only: no other local address reaches it
        assert listening_addresses(port) == ["127.0.0.1"]
        for address in non_loopback_addresses():
            with socket.socket() as s, pytest.raises(OSError):
                s.settimeout(2)
                s.connect((address, port))
        await client.shutdown_async(None)
        client.exit(None)
        await client.stop()
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()
