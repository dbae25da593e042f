"""`bench quality`: pass@1, exact match and edit similarity per subset, with the
oracle-length comparison.

For every case the normal run (the engine picks the middle's length itself) is
scored; with ``oracle=True`` the same case is run again on a fixed canvas of
exactly the true middle's token count, and the gap (oracle minus normal) shows
how much the unknown length costs.  Programs run in separate processes (see
``execution``) while the engine generates the next case.
"""
from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.bench import metrics
from engine.bench.datasets import InfillCase
from engine.bench.execution import ExecResult, Limits, run_program
from engine.bench.runs import CaseRun, RunSettings, request_for, run_case, token_counter

METRICS = ("pass@1", "exact_match", "edit_similarity")


@dataclass(frozen=True)
class QualityOptions:
    """What to run besides the sampler settings."""

    oracle: bool = False
    limits: Limits = field(default_factory=Limits)
    jobs: int = 1


def run_quality(engine: Any, subsets: dict[str, list[InfillCase]], settings: RunSettings,
                options: QualityOptions = QualityOptions(), progress: Progress | None = None) -> dict[str, Any]:
    """Run every case; returns ``{"summary": {subset: ...}, "cases": [...], "notes": [...]}``."""
    notes: list[str] = []
    count = token_counter(engine) if options.oracle else None
    if options.oracle and count is None:
        notes.append("oracle-length run skipped: the backend exposes no tokenizer to count the true middle")
    with ThreadPoolExecutor(max_workers=max(1, options.jobs)) as pool:
        rows, pending = _generate(engine, subsets, settings, count, pool, options.limits, progress)
        _collect(pending, progress)
    summary = {name: summarize([r for r in rows if r["subset"] == name], count is not None) for name in subsets}
    return {"summary": summary, "cases": rows, "notes": notes}


#: ``progress(total, label)`` returns a tqdm-like object with ``update()`` and ``close()``
Progress = Callable[[int, str], Any]
#: (case row, key to set, running program)
Pending = list[tuple[dict[str, Any], str, "Future[ExecResult]"]]


def _generate(engine: Any, subsets: dict[str, list[InfillCase]], settings: RunSettings,
              count: Callable[[str], int] | None, pool: ThreadPoolExecutor, limits: Limits,
              progress: Progress | None) -> tuple[list[dict[str, Any]], Pending]:
    """Fill every case; submit each executable middle to ``pool`` as soon as it exists."""
    rows: list[dict[str, Any]] = []
    pending: Pending = []
    for subset, cases in subsets.items():
        bar = progress(len(cases), subset) if progress else None
        for case in cases:
            row = _score_case(engine, case, settings, count)
            rows.append(row)
            if case.executable:
                for key in ("", "oracle_") if count else ("",):
                    future = pool.submit(run_program, case.program(row[key + "middle"]), limits)
                    pending.append((row, key, future))
                for i, middle in enumerate(row.get("alternatives", ())):
                    future = pool.submit(run_program, case.program(middle), limits)
                    pending.append((row, f"alternative{i + 1}_", future))
            if bar:
                bar.update(1)
        if bar:
            bar.close()
    return rows, pending


def _collect(pending: Pending, progress: Progress | None) -> None:
    """Wait for the programs; set ``passed``/``status`` (or ``oracle_...``) on their rows."""
    bar = progress(len(pending), "tests") if progress and pending else None
    for row, key, future in pending:
        result = future.result()
        row[key + "passed"] = result.passed
        row[key + "status"] = result.status
        if bar:
            bar.update(1)
    for row, _, _ in pending:
        if "alternatives" in row and "passed" in row:
            row["any_passed"] = row["passed"] or any(row.get(f"alternative{i + 1}_passed", False)
                                                     for i in range(len(row["alternatives"])))
    if bar:
        bar.close()


def _score_case(engine: Any, case: InfillCase, settings: RunSettings,
                count: Callable[[str], int] | None) -> dict[str, Any]:
    run = run_case(engine, request_for(case, settings))
    row: dict[str, Any] = {"task_id": case.task_id, "subset": case.subset, "kind": case.kind,
                           "reference": case.middle, **_scored(run, case, "")}
    if count is not None:
        true_tokens = count(case.middle)
        oracle_run = run_case(engine, request_for(case, settings, oracle_tokens=true_tokens))
        row["true_tokens"] = true_tokens
        row.update(_scored(oracle_run, case, "oracle_"))
    return row


def _scored(run: CaseRun, case: InfillCase, prefix: str) -> dict[str, Any]:
    fields = asdict(run)
    if not run.alternatives:
        del fields["alternatives"]
    else:  # any of the middles shown: the primary or an alternative
        fields["any_exact_match"] = any(metrics.exact_match(m, case.middle) for m in [run.middle, *run.alternatives])
    fields["exact_match"] = metrics.exact_match(run.middle, case.middle)
    fields["edit_similarity"] = metrics.edit_similarity(run.middle, case.middle)
    return {prefix + key: value for key, value in fields.items()}


def summarize(rows: list[dict[str, Any]], oracle: bool = False) -> dict[str, Any]:
    """Aggregate one subset's rows: metrics in percent, tokens per forward, latency."""
    out = _aggregate(rows, "")
    if oracle:
        out["oracle"] = _aggregate(rows, "oracle_")
        out["gap"] = {
            name: (None if out["oracle"][name] is None or out[name] is None
                   else out["oracle"][name] - out[name])
            for name in METRICS
        }
    return out


def _aggregate(rows: list[dict[str, Any]], prefix: str) -> dict[str, Any]:
    executed = [r[prefix + "passed"] for r in rows if prefix + "passed" in r]
    ms = [r[prefix + "ms"] for r in rows]
    extra: dict[str, Any] = {}
    if not prefix and any("alternatives" in r for r in rows):
        extra = {
            "pass@any": metrics.percent([r["any_passed"] for r in rows if "any_passed" in r]),
            "exact_match@any": metrics.percent([r.get("any_exact_match", r["exact_match"]) for r in rows]),
            "alternatives_per_case": metrics.mean([len(r.get("alternatives", ())) for r in rows]),
        }
    return extra | {
        "n": len(rows),
        "pass@1": metrics.percent(executed),
        "exact_match": metrics.percent([r[prefix + "exact_match"] for r in rows]),
        "edit_similarity": _pct(metrics.mean([r[prefix + "edit_similarity"] for r in rows])),
        "tokens_per_forward": metrics.ratio(sum(r[prefix + "tokens"] for r in rows),
                                            sum(r[prefix + "forwards"] for r in rows)),
        "ms_p50": metrics.percentile(ms, 50),
        "ms_p95": metrics.percentile(ms, 95),
    }


def _pct(value: float | None) -> float | None:
    return None if value is None else 100.0 * value
