"""The soak's JSON report (assembled from the run's records) and its printed summary."""
from __future__ import annotations

import argparse
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsp_server.bench.client import BenchClient
from lsp_server.bench.latency import percentile_or_nan, summary
from lsp_server.bench.soak.verdict import Measured, verdict
from lsp_server.bench.soak.workload import Req, Totals


@dataclass
class Run:
    """Everything the runner recorded, as the report needs it."""

    args: argparse.Namespace
    client: BenchClient
    reqs: Sequence[Req]
    samples: list[dict[str, Any]]
    totals: Totals
    open_documents: int
    warm_n: int
    #: /proc snapshots (rss_kb, threads, thread_names, load1) at the start, after warm-up, at the end
    start: dict[str, Any]
    warm: dict[str, Any]
    end: dict[str, Any]
    #: the server's final ``diffill/stats``
    stats: dict[str, Any]
    wall: float


def results(run: Run) -> dict[str, Any]:
    """The report's figures, the verdict included (everything but settings and errors)."""
    a, c, reqs, warm, start, end, stats = run.args, run.client, run.reqs, run.warm, run.start, run.end, run.stats
    clean = [r.ms for r in reqs if r.index >= run.warm_n and r.clean]
    w = min(a.window, len(clean) // 2)  # two windows that do not overlap
    first, last = clean[:w], clean[len(clean) - w:]
    outcomes = Counter(r.outcome for r in reqs)
    failures = [r for r in reqs if r.outcome in ("error", "missing")]
    measured: Measured = {
        "rss_warm_kb": warm["rss_kb"], "rss_end_kb": end["rss_kb"],
        "threads_warm": warm["threads"], "threads_end": end["threads"],
        "p95_first_ms": percentile_or_nan(first, 95),
        "p95_last_ms": percentile_or_nan(last, 95),
        "failures": len(failures) + len(c.log_errors) + len(c.shown_errors),
        "server_documents": stats.get("documents"), "client_documents": run.open_documents,
        "cancelled": outcomes["cancelled"], "cancel_expected": a.cancel_fraction > 0,
    }
    totals = run.totals
    return {
        "model": c.ready("model", a.model),
        "device": c.ready("device", a.device),
        "wall_s": round(run.wall, 1), "requests_per_s": round(len(reqs) / run.wall, 2),
        "requests": len(reqs), "warmup_requests": run.warm_n,
        "by_kind": dict(Counter(r.kind for r in reqs)),
        "by_mode": dict(Counter(r.mode for r in reqs)),
        "outcomes": dict(outcomes),
        "cancelled_by_code": dict(Counter(r.detail.split(":")[0] for r in reqs if r.outcome == "cancelled")),
        "superseded_empty": sum(1 for r in reqs if r.mode == "supersede" and r.outcome == "result"
                                and not r.nonempty),
        "nonempty_results": sum(1 for r in reqs if r.nonempty),
        "failures": [{"index": r.index, "kind": r.kind, "mode": r.mode, "outcome": r.outcome,
                      "detail": r.detail} for r in failures[:20]],
        "log_errors": c.log_errors[:20],
        "shown_errors": {"count": len(c.shown_errors), "distinct": _distinct(c.shown_errors)},
        "messages_shown": len(c.messages),
        "client": {"edits": totals.edits, "opens": totals.opens, "closes": totals.closes,
                   "fills_applied": totals.applied_edits, "fills_refused": totals.refused_edits,
                   "drafts": totals.drafts},
        "server_counters": dict(totals.server),
        "server_end": {k: stats.get(k) for k in ("documents", "cacheEntries", "engineLoaded")},
        "memory": {"rss_start_kb": start["rss_kb"], "rss_warm_kb": warm["rss_kb"], "rss_end_kb": end["rss_kb"],
                   "rss_max_kb": max(s["rss_kb"] for s in run.samples)},
        "threads": {"start": start["threads"], "warm": warm["threads"], "end": end["threads"],
                    "max": max(s["threads"] for s in run.samples),
                    "names_warm": warm["thread_names"], "names_end": end["thread_names"]},
        "latency": {"window": w, "normal_after_warmup": len(clean),
                    "first_window_ms": summary(first), "last_window_ms": summary(last),
                    "all_after_warmup_ms": summary(clean)},
        "load1": {"start": start["load1"], "warm": warm["load1"], "end": end["load1"]},
        "verdict": verdict(measured),
        "samples": run.samples,
    }


def settings_json(args: argparse.Namespace) -> dict[str, Any]:
    """The command-line options as JSON values (paths as strings)."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
            if k not in ("func",) and isinstance(v, (str, int, float, bool, Path, type(None)))}


def _distinct(messages: list[str], limit: int = 10) -> dict[str, int]:
    """The most common messages, addresses (0x...) masked so repeats group."""
    return dict(Counter(re.sub(r"0x[0-9a-f]+", "0x...", m)[:300] for m in messages).most_common(limit))


def print_summary(r: dict[str, Any]) -> None:
    if r.get("error"):
        print(f"bench soak: error: {r['error']}")
        return
    lat, mem, thr = r["latency"], r["memory"], r["threads"]
    print(f"model {r['model']} on {r['device']}: {r['requests']} requests in {r['wall_s']} s "
          f"({r['requests_per_s']}/s); outcomes {r['outcomes']}")
    print(f"  rss {mem['rss_warm_kb']} -> {mem['rss_end_kb']} kB after warm-up ({r['warmup_requests']} requests), "
          f"threads {thr['warm']} -> {thr['end']}")
    print(f"  p95 first {lat['window']} normal requests {lat['first_window_ms']['p95']} ms, "
          f"last {lat['last_window_ms']['p95']} ms")
    for name, t in r["verdict"]["targets"].items():
        print(f"  {name:20s} {t['value']!s:>10} (limit {t['limit']}): {'ok' if t['ok'] else 'FAILED'}")
    print(f"  verdict: {'PASS' if r['verdict']['ok'] else 'FAIL'}")
