"""The soak's targets, judged from the measured figures alone (pure, so that the
tests can feed it synthetic leaks and see each target fail).  Why these
limits: see ``lsp_server.bench.soak``'s docstring."""
from __future__ import annotations

import math
from typing import Any, TypedDict

TARGET_RSS_GROWTH_PCT = 10.0
TARGET_P95_DRIFT = 1.2
THREAD_SLACK = 2


class Measured(TypedDict):
    """What the verdict needs from a run (p95s are NaN when a window was empty)."""

    rss_warm_kb: int
    rss_end_kb: int
    threads_warm: int
    threads_end: int
    p95_first_ms: float
    p95_last_ms: float
    failures: int
    server_documents: int | None
    client_documents: int
    cancelled: int
    cancel_expected: bool


def verdict(m: Measured | dict[str, Any]) -> dict[str, Any]:
    """Pass/fail per target from the measured figures."""
    rss = 100.0 * (m["rss_end_kb"] - m["rss_warm_kb"]) / m["rss_warm_kb"]
    threads = m["threads_end"] - m["threads_warm"]
    first, last = m["p95_first_ms"], m["p95_last_ms"]
    drift = last / first if first and first > 0 and math.isfinite(first) and math.isfinite(last) else math.nan
    targets = {
        "failures": _target(m["failures"], 0, m["failures"] == 0),
        "rss_growth_pct": _target(round(rss, 2), TARGET_RSS_GROWTH_PCT, rss <= TARGET_RSS_GROWTH_PCT),
        "thread_growth": _target(threads, THREAD_SLACK, threads <= THREAD_SLACK),
        "p95_drift": _target(round(drift, 3), TARGET_P95_DRIFT, drift <= TARGET_P95_DRIFT),  # nan fails
        "documents_match": _target(m["server_documents"], m["client_documents"],
                                   m["server_documents"] == m["client_documents"]),
        # a soak that never cancelled anything did not test cancellation
        "cancellations_seen": _target(m["cancelled"], ">= 1", m["cancelled"] > 0 or not m["cancel_expected"]),
    }
    return {"ok": all(t["ok"] for t in targets.values()), "targets": targets}


def _target(value: Any, limit: Any, ok: bool) -> dict[str, Any]:
    return {"value": value, "limit": limit, "ok": bool(ok)}
