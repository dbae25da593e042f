"""The client-side overhead measurement of `diffill bench lsp --backend ...`:
the loopback stand-ins (tests/remote_standin.py, following llama.cpp's
llama-server /infill as documented; not llama.cpp) report their own processing
time, and the bench subtracts it request by request."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from importlib.abc import MetaPathFinder
from pathlib import Path

import pytest
from remote_standin import StandinServer

from engine import InfillRequest
from engine.backends.remote import load_remote
from engine.backends.remote.options import ClientOptions
from engine.engine import Engine
from lsp_server.bench.remote_overhead import client_overhead, fetch_processing_ms

ROOT = Path(__file__).resolve().parent.parent
REQUEST = InfillRequest(prefix="def add(a, b):\n    ", suffix="\n", max_new_tokens=8)


def test_standin_reports_its_processing_time_once() -> None:
    with StandinServer("llamacpp") as srv:
        srv.delay_s = 0.02  # between stream events: 3 gaps of 20 ms inside the stand-in
        engine = Engine(load_remote("llamacpp", srv.url, None))
        trips = []
        for _ in range(3):
            start = time.perf_counter()
            engine.infill(REQUEST)
            trips.append((time.perf_counter() - start) * 1000)
        times = fetch_processing_ms(srv.url)
        assert times is not None and len(times) == 3
        assert all(55 <= t <= trip for t, trip in zip(times, trips))
        assert fetch_processing_ms(srv.url) == []  # handed out once


def test_a_server_without_timings_is_said_so() -> None:
    with StandinServer("llamacpp") as srv:
        url = srv.url
    assert fetch_processing_ms(url) is None  # nothing listens there any more
    assert "does not report" in client_overhead([1.0], None)["client_overhead_note"]


def test_client_overhead_pairs_requests() -> None:
    result = client_overhead([5.0, 6.0, 9.0], [1.0, 1.5, 2.0])
    assert result["client_overhead_ms"]["p50"] == 4.5 and result["client_overhead_ms"]["n"] == 3
    assert result["client_overhead_target"] == {"p50_ms": 3.0, "ok": False}
    assert client_overhead([2.0, 2.5], [0.5, 0.5])["client_overhead_target"]["ok"] is True
    unpaired = client_overhead([5.0, 6.0], [1.0])
    assert unpaired["client_overhead_ms"] is None and "cannot pair" in unpaired["client_overhead_note"]


class _Lookups(MetaPathFinder):
    """Records every module the import system is asked to find (and finds none itself)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def find_spec(self, fullname, path, target=None):  # type: ignore[no-untyped-def]
        self.names.append(fullname)
        return None


def test_a_request_looks_up_no_modules() -> None:
    """A request imports nothing (an earlier client looked up a missing module on every
    request: a sys.path search each time)."""
    with StandinServer("llamacpp") as srv:
        engine = Engine(load_remote("llamacpp", srv.url, None, options=ClientOptions()))
        engine.infill(REQUEST)  # first use imports what it needs
        spy = _Lookups()
        sys.meta_path.insert(0, spy)
        try:
            for _ in range(3):
                engine.infill(REQUEST)
        finally:
            sys.meta_path.remove(spy)
    assert spy.names == []


@pytest.mark.slow  # starts the language server
def test_bench_lsp_reports_client_overhead(tmp_path: Path) -> None:
    out = tmp_path / "lsp.json"
    with StandinServer("llamacpp") as srv:
        proc = subprocess.run([sys.executable, "-m", "diffill", "bench", "lsp", "--backend", "llamacpp",
                               "--url", srv.url, "--requests", "8", "--warmup", "2", "--memory-requests", "4",
                               "--memory-warmup", "2", "--quiet", "--out", str(out)],
                              capture_output=True, text=True, cwd=ROOT, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())
    assert result["client_overhead_ms"]["n"] == 8 and result["server_processing_ms"]["n"] == 8
    assert 0 < result["client_overhead_ms"]["p50"] < result["e2e_ms"]["p50"]
    assert "client_overhead_ms" in proc.stdout
