"""Forward passes per inline completion on the real-file sites of `diffill bench lsp --files`.

Why: a lever is only worth building where the forwards go. This runs the bundled
model's backend on the same sites the latency benchmark uses (same window budget,
default request) and prints, per site, the forward passes the middle took, the
step at which its first line was complete (a line break after some text), and the
request's wall and CPU milliseconds (``--threads`` fixes the thread count). Forwards
after that step are ones a single-line completion could skip; the times check the
predicted time per typed line (docs/MODELS.md).

    .venv/bin/python scripts/real-files-forwards.py .venv/lib/python3.11/site-packages/_pytest --count 40

Figures from it are in docs/BENCHMARKS.md (issue 15).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from engine import load_engine
from engine.cancellation import CancellationToken
from engine.types import InfillRequest
from engine.window import char_budgets
from lsp_server.bench.real_files import pick_files, site_in
from lsp_server.documents import extract


def first_line_step(drafts: list[tuple[int, str]]) -> int | None:
    """The first step whose draft holds a line break after some text."""
    for step, text in drafts:
        cut = text.find("\n")
        if cut >= 0 and text[:cut].strip():
            return step
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--model", default="engine/models/diffill-tiny")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: the engine's choice)")
    args = parser.parse_args()
    backend = load_engine(args.model, device="cpu", threads=args.threads).backend
    prefix_chars, suffix_chars = char_budgets(backend.context_tokens)
    total = after = 0
    wall_ms: list[float] = []
    cpu_ms: list[float] = []
    for path in pick_files(args.root, args.count):
        site = site_in(path)
        if site is None:
            continue
        ctx = extract(site.text(), len(site.prefix), len(site.prefix), language="python",
                      prefix_chars=prefix_chars, suffix_chars=suffix_chars)
        t0, c0 = time.perf_counter(), time.thread_time()
        run = backend.run(InfillRequest(prefix=ctx.prefix, suffix=ctx.suffix, language="python"), CancellationToken())
        drafts: list[tuple[int, str]] = []
        while True:
            try:
                draft = next(run)
            except StopIteration as stop:
                result = stop.value
                break
            drafts.append((draft.step, draft.text))
        wall_ms.append((time.perf_counter() - t0) * 1000)
        cpu_ms.append((time.thread_time() - c0) * 1000)
        done_at = first_line_step(drafts)
        total += result.forwards
        after += result.forwards - done_at if done_at is not None else 0
        print(json.dumps({"file": str(path), "forwards": result.forwards, "first_line_at": done_at,
                          "middle": result.middle, "ms": round(wall_ms[-1], 1), "thread_cpu_ms": round(cpu_ms[-1], 1)}))
    print(json.dumps({"forwards": total, "after_first_line": after,
                      "ms_p50": round(statistics.median(wall_ms), 1) if wall_ms else None,
                      "thread_cpu_ms_p50": round(statistics.median(cpu_ms), 1) if cpu_ms else None}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
