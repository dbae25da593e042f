"""Connect/read timeouts and retries chosen by the user: CLI flags, server
settings, and their checks, against the loopback stand-ins of
tests/remote_standin.py (which follow llama.cpp's llama-server /infill and
the OpenAI completions API as documented; they are not the engines)."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from remote_standin import StandinServer

from engine import InfillRequest
from engine.arguments import add_backend_options, remote_options_from_args
from engine.backends.remote.options import ClientOptions
from engine.errors import RemoteError
from lsp_server.cli import remote_settings
from lsp_server.config import Settings, parse_settings
from lsp_server.engine_host import _load, remote_options

ROOT = Path(__file__).resolve().parent.parent
REQUEST = InfillRequest(prefix="def add(a, b):\n    ", suffix="\n", max_new_tokens=8)


@pytest.mark.parametrize("kwargs, message", [
    ({"connect_timeout_s": 0}, r"connect timeout must be more than 0 and at most 600 s, got 0 s"),
    ({"connect_timeout_s": -1.5}, r"connect timeout must be more than 0 .* got -1\.5 s"),
    ({"read_timeout_s": 86_400}, r"read timeout must be more than 0 and at most 3600 s, got 86400 s"),
    ({"read_timeout_s": float("nan")}, r"read timeout must be a number of seconds"),
    ({"retries": -1}, r"retries must be a whole number from 0 to 10, got -1"),
    ({"retries": 11}, r"retries must be a whole number from 0 to 10, got 11"),
    ({"retries": True}, r"retries must be a whole number"),
])
def test_client_options_refuse_bad_values(kwargs: dict, message: str) -> None:
    with pytest.raises(RemoteError, match=message):
        ClientOptions(**kwargs)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="diffill")
    add_backend_options(parser)
    return parser


@pytest.mark.parametrize("argv, message", [
    (["--timeout-connect", "-1"], "argument --timeout-connect: the connect timeout must be more than 0"),
    (["--timeout-read", "0"], "argument --timeout-read: the read timeout must be more than 0 and at most 3600 s"),
    (["--timeout-read", "soon"], "argument --timeout-read: the read timeout must be a number of seconds, got 'soon'"),
    (["--retries", "100"], "argument --retries: retries must be a whole number from 0 to 10, got '100'"),
    (["--retries", "1.5"], "argument --retries: retries must be a whole number from 0 to 10, got '1.5'"),
])
def test_cli_flags_refuse_bad_values_in_one_line(argv: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_flags_become_client_options_and_server_settings() -> None:
    args = _parser().parse_args(["--timeout-connect", "0.5", "--timeout-read", "2.25", "--retries", "0",
                                 "--no-proxy"])
    assert remote_options_from_args(args) == ClientOptions(connect_timeout_s=0.5, read_timeout_s=2.25, retries=0,
                                                           proxy_from_env=False)
    assert remote_settings(args) == {"remote_connect_timeout_ms": 500, "remote_read_timeout_ms": 2250,
                                     "remote_retries": 0, "remote_proxy": False}
    defaults = _parser().parse_args([])
    assert remote_options_from_args(defaults) == ClientOptions() and remote_settings(defaults) == {}


def test_settings_are_checked_and_reach_the_client() -> None:
    settings, warnings = parse_settings({"remoteConnectTimeoutMs": -5, "remoteReadTimeoutMs": 86_400_000,
                                         "remoteRetries": 3, "remoteProxy": "yes"})
    assert settings.remote_retries == 3
    assert settings.remote_connect_timeout_ms == 5000 and settings.remote_read_timeout_ms == 60_000
    assert len(warnings) == 3
    assert "'remoteConnectTimeoutMs': expected an integer in 1..600000" in warnings[0]
    assert "'remoteReadTimeoutMs': expected an integer in 1..3600000" in warnings[1]
    assert "'remoteProxy': expected true or false" in warnings[2]
    options = remote_options(Settings(remote_connect_timeout_ms=250, remote_read_timeout_ms=1500,
                                      remote_retries=1, remote_proxy=False))
    assert options == ClientOptions(connect_timeout_s=0.25, read_timeout_s=1.5, retries=1, proxy_from_env=False)


def test_read_timeout_setting_applies_to_the_server_s_requests() -> None:
    """The language server's engine loader passes remoteReadTimeoutMs through (llama.cpp stand-in, hanging)."""
    with StandinServer("llamacpp") as srv:
        srv.hang = True
        engine = _load(Settings(backend="llamacpp", url=srv.url, remote_read_timeout_ms=300))
        start = time.perf_counter()
        with pytest.raises(RemoteError, match=r"did not answer within 0\.3 s \(read timeout\)"):
            engine.infill(REQUEST)
        assert time.perf_counter() - start < 2.0


def test_retries_setting_bounds_the_tries() -> None:
    """OpenAI completions stand-in answering 503 twice: retries 1 gives up after 2 tries, retries 2 succeeds."""
    with StandinServer("openai") as srv:
        srv.statuses = [503, 503]
        engine = _load(Settings(backend="openai", url=srv.url, model="m", remote_retries=1))
        with pytest.raises(RemoteError, match=r"busy \(HTTP 503: server busy\) after 2 tries"):
            engine.infill(REQUEST)
        assert len(srv.requests) == 2
        srv.statuses = [503, 503]
        engine = _load(Settings(backend="openai", url=srv.url, model="m", remote_retries=2))
        assert engine.infill(REQUEST).middle == "return a + b"


@pytest.mark.slow  # starts a diffill process
def test_fill_cli_timeout_and_retries_flags() -> None:
    """`diffill fill --jsonl --timeout-read 0.3` against a llama.cpp stand-in that never answers."""
    line = json.dumps({"prefix": "x = ", "suffix": "\n"}) + "\n"
    with StandinServer("llamacpp") as srv:
        srv.hang = True
        proc = subprocess.run([sys.executable, "-m", "diffill", "fill", "--jsonl", "--backend", "llamacpp",
                               "--url", srv.url, "--timeout-read", "0.3", "--retries", "0"],
                              input=line, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "did not answer within 0.3 s (read timeout)" in json.loads(proc.stdout)["error"]
