"""What reusing the previous keystroke's keys and values costs in quality, and saves.

Why: on the 2-core CPU a suggestion's first forward over the whole window is
more than half of its time (docs/BENCHMARKS.md, issue 15), and between two
keystrokes most of the window is the same text. The engine can start a request
from what an earlier one kept (``InfillRequest.reuse_previous``,
``engine.backends.keystroke_reuse``); this experiment measures that
approximation on keystroke pairs, apart from the server's request path:

for each case, request A is the case with the last ``--typed`` characters of the
prefix not typed yet, run to the end from scratch (it becomes the base); request
B is the case itself, run twice: from scratch, as every request was before, and
reusing A's keys and values.

    .venv/bin/python scripts/keystroke-reuse.py --limit 100 --out docs/bench/keystroke-reuse.json
    .venv/bin/python scripts/keystroke-reuse.py --files .venv/lib/python3.11/site-packages/_pytest --count 40 \
        --out docs/bench/keystroke-reuse-real-files.json

``--base-cancelled`` stops A right after its first forward, as the next keystroke
usually stops a request in the editor (the base is then that first forward's).

``--files`` takes the sites of `diffill bench lsp --files` (long files: the window is
full, so typing slides its start) in place of the held-out cases. Both requests are
cut around the cursor as the server cuts them.
It prints exact match, edit similarity, the middles identical both ways, forwards
and B's time both ways.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from engine.backends import keystroke_reuse
from engine.bench.datasets import load_subset, spread, subset_path
from engine.bench.metrics import edit_similarity, exact_match, percentile
from engine.engine import Engine, load_engine
from engine.types import InfillRequest


def real_file_cases(root: Path, count: int) -> list[tuple[str, str, str]]:
    """(prefix, suffix, rest of the line) at the sites of `diffill bench lsp --files`."""
    from lsp_server.bench.real_files import pick_files, site_in

    sites = [site_in(path) for path in pick_files(root, count)]
    return [(site.prefix, site.suffix, site.truth) for site in sites if site is not None]


def window_request(engine: Engine, prefix: str, suffix: str, **kw: Any) -> InfillRequest:
    """The request the server would send for a cursor between ``prefix`` and ``suffix``:
    both cut to its character budgets around the cursor (so the window's start moves
    with the cursor, as while typing)."""
    from engine.window import char_budgets
    from lsp_server.documents import extract

    prefix_chars, suffix_chars = char_budgets(engine.backend.context_tokens)
    ctx = extract(prefix + suffix, len(prefix), len(prefix), language="python",
                  prefix_chars=prefix_chars, suffix_chars=suffix_chars)
    return InfillRequest(prefix=ctx.prefix, suffix=ctx.suffix, **kw)


def timed(engine: Engine, request: InfillRequest) -> tuple[Any, float]:
    t0 = time.perf_counter()
    result = engine.infill(request)
    return result, (time.perf_counter() - t0) * 1000


def run_base(engine: Engine, request: InfillRequest, cancelled: bool) -> None:
    """Request A, to the end or (``cancelled``) only up to its first draft: its first forward."""
    if not cancelled:
        engine.infill(request)
        return
    drafts = engine.stream(request)
    next(drafts)
    drafts.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subset", default="heldout-single")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--files", type=Path, help="real-file sites under this folder instead")
    parser.add_argument("--count", type=int, default=40, help="files (with --files)")
    parser.add_argument("--typed", type=int, default=1, help="characters typed between A and B")
    parser.add_argument("--margin", type=int, default=None,
                        help="neighbours recomputed around changes and canvas (engine.backends.keystroke_reuse.MARGIN)")
    parser.add_argument("--max-changed", type=int, default=None,
                        help="context tokens that may differ from the base (keystroke_reuse.MAX_CHANGED)")
    parser.add_argument("--base-cancelled", action="store_true",
                        help="stop A after its first forward (the server's next keystroke does that)")
    parser.add_argument("--dtype", default=None,
                        help="float32 or bfloat16 (default: the engine's choice for this CPU)")
    parser.add_argument("--out", type=Path, default=Path("bench-results/keystroke-reuse.json"))
    args = parser.parse_args()
    if args.margin is not None:
        keystroke_reuse.MARGIN = args.margin
    if args.max_changed is not None:
        keystroke_reuse.MAX_CHANGED = args.max_changed
    engine = load_engine(None, device="cpu", dtype=args.dtype)
    cases = real_file_cases(args.files, args.count) if args.files else [
        (c.prefix, c.suffix, c.middle) for c in spread(load_subset(args.subset, subset_path(args.subset, None, None)),
                                                        args.limit)]
    rows = []
    for prefix, suffix, truth in cases:
        if len(prefix) <= args.typed:
            continue
        engine.backend.forget_previous()  # A starts from scratch and becomes the base
        run_base(engine, window_request(engine, prefix[:-args.typed], suffix, reuse_previous=True),
                 args.base_cancelled)
        today, today_ms = timed(engine, window_request(engine, prefix, suffix))
        reused, reused_ms = timed(engine, window_request(engine, prefix, suffix, reuse_previous=True))
        rows.append({"today": today.middle, "reused": reused.middle, "truth": truth,
                     "today_ms": today_ms, "reused_ms": reused_ms,
                     "today_forwards": today.forwards, "reused_forwards": reused.forwards,
                     "did_reuse": bool(reused.timings.get("reused_previous"))})
    n = len(rows)
    both = ("today", "reused")
    summary = {
        "cases": n,
        "dtype": str(engine.backend.model.dtype).removeprefix("torch."),
        "typed": args.typed,
        "margin": keystroke_reuse.MARGIN,
        "max_changed": keystroke_reuse.MAX_CHANGED,
        "base_cancelled": args.base_cancelled,
        "near": keystroke_reuse.NEAR,
        "min_shared": keystroke_reuse.MIN_SHARED,
        "did_reuse": sum(r["did_reuse"] for r in rows),
        "exact_pct": {k: 100 * sum(exact_match(r[k], r["truth"]) for r in rows) / n for k in both},
        "similarity": {k: 100 * sum(edit_similarity(r[k], r["truth"]) for r in rows) / n for k in both},
        "same_middle": sum(r["today"] == r["reused"] for r in rows),
        "forwards_per_case": {k: sum(r[f"{k}_forwards"] for r in rows) / n for k in both},
        "p50_ms": {k: percentile([r[f"{k}_ms"] for r in rows], 50) for k in both},
        "p95_ms": {k: percentile([r[f"{k}_ms"] for r in rows], 95) for k in both},
    }
    print(json.dumps(summary, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
