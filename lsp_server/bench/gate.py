"""`diffill bench gate`: what a confidence gate would show, from recorded benchmark runs.

Why a benchmark of its own: ``minConfidence`` trades how often a suggestion
appears against how often what appears is right.  Both sides are measured on
cases whose right answer is known: ``bench quality`` results (held-out and
HumanEval single-line cases, every token's probability recorded) and ``bench
lsp --files`` results (real files through the server, which sends each
suggestion's confidence).  For each threshold the curve gives the share of
requests that still get a suggestion and, among those shown, exact match, edit
similarity and (HumanEval) the pass rate.

For ``bench quality`` cases each middle is post-processed as the server would
show it at a blank-line cursor in ``auto`` line mode (the single-line cases'
layout), and the confidence is that of the tokens shown
(``lsp_server.suggestion``), by each measure; a HumanEval program whose shown
text differs from the raw middle is run again with the shown text.
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsp_server.postprocess.context import FilterContext
from lsp_server.postprocess.pipeline import postprocess
from lsp_server.suggestion import MEASURE, measure, shown

#: thresholds of the printed and plotted curve
THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(20))
MEASURES = ("gmean", "min")


@dataclass(frozen=True)
class Row:
    """One request: the confidence of what would be shown (None: nothing to show) and its scores."""

    confidence: float | None
    exact: bool
    similarity: float
    passed: bool | None = None  # executed cases only


def curve(rows: list[Row], thresholds: Iterable[float] = THRESHOLDS) -> list[dict[str, Any]]:
    """Per threshold: the share shown and the scores among the shown (all rows are requests)."""
    out = []
    total = len(rows)
    for t in thresholds:
        kept = [r for r in rows if r.confidence is not None and r.confidence >= t]
        executed = [r.passed for r in kept if r.passed is not None]
        out.append({
            "threshold": t,
            "shown": len(kept),
            "shown_pct": 100.0 * len(kept) / total if total else None,
            "exact_pct": 100.0 * sum(r.exact for r in kept) / len(kept) if kept else None,
            "similarity": 100.0 * sum(r.similarity for r in kept) / len(kept) if kept else None,
            "pass_pct": 100.0 * sum(executed) / len(executed) if executed else None,
        })
    return out


def quality_rows(path: Path, subset: str, how: str, data_dir: Path | None = None,
                 jobs: int = 1) -> list[Row]:
    """The rows of one subset of a ``bench quality`` result, as the server would show them."""
    from engine.bench import metrics

    result = json.loads(path.read_text(encoding="utf-8"))
    cases = [c for c in result["cases"] if c["subset"] == subset]
    known = _cases(subset, data_dir) if cases else {}
    rows: list[Row] = []
    reruns: list[tuple[int, str]] = []
    for c in cases:
        case = known.get(c["task_id"])
        # the text around the middle (the line mode reads the cursor's line); a blank-line cursor,
        # the single-line cases' layout, where the case is not at hand
        prefix, suffix = (case.prefix, case.suffix) if case is not None else ("\n", "\n")
        text = postprocess(c["middle"], FilterContext(prefix, suffix, "auto", "python"))
        s = shown(c["middle"], text, c.get("confidence", []), c.get("token_ends", []))
        passed = c.get("passed")
        if passed is not None and text != c["middle"] and case is not None and case.executable:
            reruns.append((len(rows), case.program(text + "\n" if text else "")))
        rows.append(Row(measure(s.probabilities, how) if text else None,
                        bool(text) and metrics.exact_match(text, c["reference"]),
                        metrics.edit_similarity(text, c["reference"]), passed))
    if reruns:
        from engine.bench.execution import run_programs

        for (i, _), res in zip(reruns, run_programs([p for _, p in reruns], jobs=jobs)):
            rows[i] = Row(rows[i].confidence, rows[i].exact, rows[i].similarity, res.passed)
    return rows


def _cases(subset: str, data_dir: Path | None) -> dict[str, Any]:
    """The subset's cases by task id (prefix, suffix, tests), where its file is at hand."""
    from engine.bench.datasets import load_subset, subset_path

    where = subset_path(subset, data_dir, None)
    return {c.task_id: c for c in load_subset(subset, where)} if where is not None and where.is_file() else {}


def real_file_rows(path: Path, how: str | None = None) -> list[Row]:
    """The rows of a ``bench lsp --files`` result: the server's own confidence of each invoked
    answer, or with ``how`` that measure of the probabilities it sent for the shown tokens."""
    result = json.loads(path.read_text(encoding="utf-8"))
    rows = []
    for r in result["rows"]:
        confidence = r.get("confidence") if how is None else measure(r.get("probabilities") or [], how)
        rows.append(Row(confidence if r.get("invoked") else None, bool(r["exact"]),
                        float(r.get("edit_similarity") or 0.0)))
    return rows


def table(points: list[dict[str, Any]]) -> str:
    from engine.bench.report import table as render

    return render(["min conf.", "shown", "shown %", "EM among shown %", "ES among shown", "pass among shown %"],
                  [[p["threshold"], p["shown"], p["shown_pct"], p["exact_pct"], p["similarity"], p["pass_pct"]]
                   for p in points])


def register_bench(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("gate", help="what a confidence gate (minConfidence) would show, from results",
                              description=__doc__.split("\n\n")[0] + " Reads bench quality and bench lsp --files "
                              "results; prints and writes the curve per set and confidence measure.")
    p.add_argument("--quality", type=Path, action="append", default=[], metavar="FILE",
                   help="a bench quality result (subsets single and heldout-single are read)")
    p.add_argument("--real-files", type=Path, action="append", default=[], metavar="FILE",
                   help="a bench lsp --files result (repeatable: each one's curve, then all pooled)")
    p.add_argument("--data", type=Path, default=None, metavar="DIR",
                   help="HumanEval-Infilling directory (to run programs whose shown text differs)")
    p.add_argument("--jobs", type=int, default=1, help="programs run in parallel (default 1)")
    p.add_argument("--out", type=Path, default=None, metavar="FILE", help="write the curves as JSON")
    p.add_argument("--plot", type=Path, default=None, metavar="FILE",
                   help="draw the curves (PNG; needs diffill[bench])")
    p.set_defaults(func=run_from_args)


def run_from_args(args: argparse.Namespace) -> int:
    curves: dict[str, list[dict[str, Any]]] = {}
    measure_of: dict[str, str] = {}  # curve name -> the confidence measure it is drawn by
    in_pool: set[str] = set()  # the per-project curves the pooled ones sum up
    for path in args.quality:
        for subset in ("heldout-single", "single"):
            for how in MEASURES:
                rows = quality_rows(path, subset, how, args.data, args.jobs)
                if rows:
                    name = f"{subset} ({how}) {path.name}"
                    curves[name], measure_of[name] = curve(rows), how
    pooled: dict[str, list[Row]] = {how: [] for how in MEASURES}
    for path in args.real_files:
        if any(r.get("probabilities") for r in json.loads(path.read_text(encoding="utf-8"))["rows"]):
            for how in MEASURES:
                rows = real_file_rows(path, how)
                name = f"real files ({how}) {path.name}"
                curves[name], measure_of[name] = curve(rows), how
                pooled[how] += rows
                in_pool.add(name)
        else:  # an older result: the server's own measure only
            curves[f"real files {path.name}"] = curve(real_file_rows(path))
    pooling = len(args.real_files) > 1  # few exact answers per project: the projects together as well
    if pooling:
        for how, rows in pooled.items():
            if rows:
                name = f"real files ({how}) {len(args.real_files)} results pooled"
                curves[name], measure_of[name] = curve(rows), how
    for name, points in curves.items():
        print(name)
        print(table(points))
        print()
    if args.out:
        from engine.bench.report import write_json

        write_json({"benchmark": "gate", "curves": curves}, args.out)
    if args.plot:
        from engine.bench.plot import gate_curves
        from lsp_server.config import MIN_CONFIDENCE

        drawn = {name: points for name, points in curves.items()  # one line per set in the figure
                 if not (pooling and name in in_pool)}
        default = {name: MIN_CONFIDENCE for name in drawn if measure_of.get(name) == MEASURE}  # the server's
        gate_curves(drawn, args.plot, marked=default)
    return 0
