"""Plain-text tables for the benchmark summaries, and JSON output."""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A left-aligned first column and right-aligned numeric columns."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) if i == 0 else v.rjust(w)
                         for i, (v, w) in enumerate(zip(values, widths, strict=True))).rstrip()

    out = [line(list(headers)), line(["-" * w for w in widths])]
    out.extend(line(r) for r in cells)
    return "\n".join(out)


def quality_table(summary: dict[str, dict[str, Any]]) -> str:
    """One row per subset: normal-run metrics, then the oracle run and the gap if present."""
    oracle = any("oracle" in s for s in summary.values())
    alternatives = any("pass@any" in s for s in summary.values())
    headers = ["subset", "n", "pass@1", "EM", "ES", "tok/fwd", "p50 ms"]
    if alternatives:
        headers += ["pass@any", "EM@any", "alts/case"]
    if oracle:
        headers += ["oracle pass@1", "oracle EM", "gap pass@1", "gap EM"]
    rows = []
    for name, s in summary.items():
        row = [name, s["n"], s["pass@1"], s["exact_match"], s["edit_similarity"],
               s["tokens_per_forward"], s["ms_p50"]]
        if alternatives:
            row += [s.get("pass@any"), s.get("exact_match@any"), s.get("alternatives_per_case")]
        if oracle:
            o, g = s.get("oracle", {}), s.get("gap", {})
            row += [o.get("pass@1"), o.get("exact_match"), g.get("pass@1"), g.get("exact_match")]
        rows.append(row)
    return table(headers, rows)


def speed_table(summary: dict[str, dict[str, Any]]) -> str:
    """One row per (kind, run), then whether the target is met per kind."""
    headers = ["kind", "run", "n", "tok/fwd", "p50 ms", "p95 ms", "EM", "target met"]
    rows = []
    for kind, s in summary.items():
        for name, stats in s.items():
            if name == "target":
                continue
            met = s["target"]["met"] if name == "parallel" else ""
            rows.append([kind, name, stats["n"], stats["tokens_per_forward"], stats["ms_p50"],
                         stats["ms_p95"], stats["exact_match"], met])
    return table(headers, rows)


def write_json(data: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)
