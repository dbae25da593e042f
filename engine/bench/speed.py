"""`bench speed`: tokens per forward pass and latency, parallel decoding vs one token per step.

Both runs use the same loaded model in the same process, on the same cases,
interleaved case by case so that machine-load drift hits both alike, after
warm-up runs of each.  "Tokens per forward" is the real middle tokens the
engine produced (``InfillResult.tokens``, filler excluded) over the forward
passes it made.  Exact match is reported for both runs so that the target
(>= 3 tokens per forward with exact match within 1 point of the
one-token-per-step run) can be read off.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.bench import metrics
from engine.bench.datasets import InfillCase
from engine.bench.runs import CaseRun, RunSettings, request_for, run_case

#: run names, in report order
PARALLEL, ONE_PER_STEP = "parallel", "one-per-step"
RUNS = (PARALLEL, ONE_PER_STEP)
#: the target this benchmark checks
TARGET_TOKENS_PER_FORWARD = 3.0
TARGET_EM_POINTS = 1.0


def run_speed(engine: Any, cases: dict[str, list[InfillCase]], settings: RunSettings,
              warmup: int = 2, progress: Callable[[int, str], Any] | None = None) -> dict[str, Any]:
    """Run both decoders on every case of every kind (``{"single": [...], "multi": [...]}``).

    Returns ``{"summary": {kind: {run: stats}, ...}, "cases": [...]}``.
    """
    everything = [case for group in cases.values() for case in group]
    if everything and warmup > 0:
        for _ in range(warmup):
            for one_per_step in (False, True):
                run_case(engine, request_for(everything[0], settings, one_per_step=one_per_step))
    rows: list[dict[str, Any]] = []
    for kind, group in cases.items():
        bar = progress(len(group), kind) if progress else None
        for case in group:
            for name in RUNS:
                run = run_case(engine, request_for(case, settings, one_per_step=name == ONE_PER_STEP))
                rows.append(_row(case, kind, name, run))
            if bar:
                bar.update(1)
        if bar:
            bar.close()
    summary = {kind: summarize([r for r in rows if r["kind"] == kind]) for kind in cases}
    return {"summary": summary, "cases": rows}


def _row(case: InfillCase, kind: str, name: str, run: CaseRun) -> dict[str, Any]:
    return {
        "task_id": case.task_id, "kind": kind, "run": name, "middle": run.middle,
        "tokens": run.tokens, "forwards": run.forwards, "ms": run.ms,
        "max_new_tokens": run.max_new_tokens,
        "exact_match": metrics.exact_match(run.middle, case.middle),
    }


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-run statistics for one kind, plus whether the target is met."""
    out: dict[str, Any] = {}
    for name in RUNS:
        mine = [r for r in rows if r["run"] == name]
        ms = [r["ms"] for r in mine]
        out[name] = {
            "n": len(mine),
            "tokens": sum(r["tokens"] for r in mine),
            "forwards": sum(r["forwards"] for r in mine),
            "tokens_per_forward": metrics.ratio(sum(r["tokens"] for r in mine),
                                                sum(r["forwards"] for r in mine)),
            "ms_p50": metrics.percentile(ms, 50),
            "ms_p95": metrics.percentile(ms, 95),
            "exact_match": metrics.percent([r["exact_match"] for r in mine]),
        }
    out["target"] = _target(out[PARALLEL], out[ONE_PER_STEP])
    return out


def _target(parallel: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    tpf = parallel["tokens_per_forward"]
    em, em_ref = parallel["exact_match"], reference["exact_match"]
    em_gap = None if em is None or em_ref is None else em - em_ref
    fast = tpf is not None and tpf >= TARGET_TOKENS_PER_FORWARD
    close = em_gap is not None and em_gap >= -TARGET_EM_POINTS
    speedup = metrics.ratio(reference["ms_p50"] or 0.0, parallel["ms_p50"] or 0.0)
    return {"tokens_per_forward_ok": fast, "exact_match_gap": em_gap,
            "exact_match_ok": close, "met": fast and close, "latency_speedup_p50": speedup}
