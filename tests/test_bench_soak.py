"""`diffill bench soak`: a short run against the real server (tiny random model)
and the verdict on synthetic leaks, so the check is known to be able to fail."""
from __future__ import annotations

import json
import math
import os
import threading
import time
from pathlib import Path

import pytest

from diffill.main import build_parser
from lsp_server.bench.procstat import read_threads
from lsp_server.bench.soak.verdict import THREAD_SLACK, verdict
from lsp_server.bench.soak.workload import MirrorDoc

#: starts processes or trains/loads models: left out of the quick loop (pytest -m 'not slow and not editor')
pytestmark = pytest.mark.slow

HEALTHY = {
    "rss_warm_kb": 500_000, "rss_end_kb": 520_000, "threads_warm": 4, "threads_end": 4,
    "p95_first_ms": 60.0, "p95_last_ms": 63.0, "failures": 0, "server_documents": 30,
    "client_documents": 30, "cancelled": 100, "cancel_expected": True,
}


def test_verdict_passes_a_healthy_run() -> None:
    v = verdict(HEALTHY)
    assert v["ok"], v
    assert v["targets"]["rss_growth_pct"]["value"] == 4.0
    assert v["targets"]["p95_drift"]["value"] == 1.05


@pytest.mark.parametrize("change, target", [
    ({"rss_end_kb": 560_000}, "rss_growth_pct"),  # +12 %: a memory leak
    ({"threads_end": 4 + THREAD_SLACK + 1}, "thread_growth"),  # a thread leak
    ({"p95_last_ms": 80.0}, "p95_drift"),  # 1.33 x: a slow-down
    ({"p95_first_ms": math.nan}, "p95_drift"),  # no latencies: not a pass
    ({"failures": 1}, "failures"),
    ({"server_documents": 31}, "documents_match"),  # a closed document kept
    ({"cancelled": 0}, "cancellations_seen"),
])
def test_verdict_detects(change: dict, target: str) -> None:
    v = verdict(HEALTHY | change)
    assert not v["ok"]
    assert [name for name, t in v["targets"].items() if not t["ok"]] == [target]


def test_thread_count_sees_a_new_thread() -> None:
    before = read_threads(os.getpid())
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert read_threads(os.getpid()) == before + 1
    finally:
        stop.set()
        t.join()
    # join returns just before the OS thread is gone: give it a moment
    deadline = time.monotonic() + 5
    while read_threads(os.getpid()) != before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert read_threads(os.getpid()) == before


def test_mirror_doc_positions_are_utf16_and_lsp_line_breaks() -> None:
    doc = MirrorDoc("file:///x.py", "a = 1\r\nb = '\U0001F600x'\rc\n", 1)
    assert doc.line_count() == 4 and doc.line(1) == "b = '\U0001F600x'"
    x = doc.text.index("x'")
    assert doc.position(x) == (1, 7)  # the emoji is two UTF-16 units
    assert doc.offset(1, 7) == x
    doc.replace(x, x + 1, "yz")
    assert doc.line(1) == "b = '\U0001F600yz'" and doc.line(2) == "c"


def test_soak_run_against_the_real_server(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    args = build_parser().parse_args([
        "bench", "soak", "--model", str(tiny_model_dir), "--requests", "300", "--documents", "6",
        "--threads", "1", "--seed", "3", "--out", str(out), "--quiet",
    ])
    rc = args.func(args)
    r = json.loads(out.read_text())
    assert r["error"] is None, r
    assert rc == (0 if r["verdict"]["ok"] else 1)
    assert r["requests"] == 300 and sum(r["outcomes"].values()) == 300
    assert set(r["by_kind"]) == {"inline", "completion", "command"}
    assert set(r["by_mode"]) == {"normal", "cancel", "supersede"}
    assert r["outcomes"].get("cancelled", 0) > 0  # $/cancelRequest really cancelled requests
    assert r["failures"] == [] and r["log_errors"] == []
    assert r["client"]["edits"] > 300 and r["client"]["opens"] > 6 and r["client"]["fills_applied"] > 0
    targets = r["verdict"]["targets"]
    for name in ("documents_match", "cancellations_seen", "thread_growth"):
        assert targets[name]["ok"], (name, targets[name])
    assert r["threads"]["warm"] >= 2 and r["threads"]["end"] >= 2  # main loop + engine thread at least
    assert r["memory"]["rss_warm_kb"] > 0 and r["latency"]["window"] > 0
    assert len(r["samples"]) >= 40 and all(s["threads"] > 0 and s["rss_kb"] > 0 for s in r["samples"])
    _no_error_popups(r["shown_errors"])
    assert targets["failures"]["ok"] and targets["failures"]["value"] == 0


def _no_error_popups(shown: dict) -> None:
    assert shown["count"] == 0, shown
