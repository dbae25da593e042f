"""Keystroke completions with and without the symbol index being built.

The target (issue 14): indexing a 5,000-file workspace must not slow
completions by more than 10 %.  Completions come at a fixed rate (an editor
asks after each pause in typing, not back to back) at the same cursor sites in
three phases: before the build, while it runs (until it finishes), and after
it; the slowdown compares the phase during the build with before and after
together, so that a change in the machine's other load shows up as a gap
between before and after.  A completion here is ``engine.infill`` in this
process: what the server's handler spends its time in, sharing this process's
GIL with the index thread (the parsing itself runs in the index worker process).
"""
from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lsp_server.bench.latency import summary
from lsp_server.context.files import read_source
from lsp_server.context.service import ContextService

if TYPE_CHECKING:
    from engine import Engine, InfillRequest

#: completions timed before and after the build (each)
DEFAULT_PER_PHASE = 30


def completion_requests(files: list[str], count: int, max_new_tokens: int, rng: random.Random) -> list[InfillRequest]:
    """``count`` cursor sites in random files: prefix and suffix of a real file."""
    from engine import InfillRequest

    out: list[InfillRequest] = []
    while len(out) < count:
        text = read_source(rng.choice(files), None)
        if not text or len(text) < 400:
            continue
        at = rng.randrange(len(text) // 4, len(text))
        out.append(InfillRequest(prefix=text[:at], suffix=text[at:], language="python", max_new_tokens=max_new_tokens))
    return out


def _phase(engine: Engine, requests: list[InfillRequest], interval: float, *, count: int = 0,
           until: Callable[[], bool] | None = None,
           seen: Callable[[list[float]], None] | None = None) -> list[float]:
    """Completions every ``interval`` seconds: ``count`` of them, or until ``until()``;
    ``seen`` gets the times so far after each one."""
    times: list[float] = []
    due = time.perf_counter()
    while (until is None and len(times) < count) or (until is not None and not until()):
        req = requests[len(times) % len(requests)]
        t = time.perf_counter()
        engine.infill(req)
        times.append((time.perf_counter() - t) * 1000)
        if seen is not None:
            seen(times)
        due += interval
        time.sleep(max(0.0, due - time.perf_counter()))
    return times


def run_load(folders: list[str], engine: Engine, requests: list[InfillRequest], interval: float, per_phase: int,
             report: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Completion latency before, during and after a background build of ``folders``."""
    _phase(engine, requests, interval, count=min(5, len(requests)))  # warm up
    before = _phase(engine, requests, interval, count=per_phase,
                    seen=lambda t: report({"complete": False, "before": summary(t)}))
    service = ContextService()
    try:
        t0 = time.perf_counter()
        build = service.start(folders, [], dict)
        during = _phase(engine, requests, interval, until=build.done,
                        seen=lambda t: report({"complete": False, "before": summary(before), "during": summary(t),
                                               "indexedFiles": service.indexer.files_seen,
                                               "buildSeconds": round(time.perf_counter() - t0, 1)}))
        index_s = time.perf_counter() - t0
        files = build.result()
        worker = service.indexer.worker.running
    finally:
        service.shutdown()
    report({"complete": False, "before": summary(before), "during": summary(during)})
    after = _phase(engine, requests, interval, count=per_phase)
    base, busy = summary(before + after), summary(during)
    return {
        "complete": True, "intervalS": interval, "files": files, "indexSecondsUnderCompletions": round(index_s, 2),
        "indexWorkerProcess": worker, "before": summary(before), "during": busy, "after": summary(after),
        "slowdownP50Pct": round(100 * (busy["p50"] / base["p50"] - 1), 1) if during else None,
        "slowdownMeanPct": round(100 * (busy["mean"] / base["mean"] - 1), 1) if during else None,
        "target_pct": 10.0,
    }
