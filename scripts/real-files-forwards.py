"""Forward passes per inline completion on the real-file sites of `diffill bench lsp --files`.

Why: a lever is only worth building where the forwards go. This runs the bundled
model's backend on the same sites the latency benchmark uses (same window budget,
default request) and prints, per site, the forward passes the middle took and the
step at which its first line was complete (a line break after some text). Forwards
after that step are ones a single-line completion could skip.

    .venv/bin/python scripts/real-files-forwards.py .venv/lib/python3.11/site-packages/_pytest --count 40

Figures from it are in docs/BENCHMARKS.md (issue 15).
"""
from __future__ import annotations

import argparse
import json
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
    args = parser.parse_args()
    backend = load_engine(args.model, device="cpu").backend
    prefix_chars, suffix_chars = char_budgets(backend.context_tokens)
    total = after = 0
    for path in pick_files(args.root, args.count):
        site = site_in(path)
        if site is None:
            continue
        ctx = extract(site.text(), len(site.prefix), len(site.prefix), language="python",
                      prefix_chars=prefix_chars, suffix_chars=suffix_chars)
        run = backend.run(InfillRequest(prefix=ctx.prefix, suffix=ctx.suffix, language="python"), CancellationToken())
        drafts: list[tuple[int, str]] = []
        while True:
            try:
                draft = next(run)
            except StopIteration as stop:
                result = stop.value
                break
            drafts.append((draft.step, draft.text))
        done_at = first_line_step(drafts)
        total += result.forwards
        after += result.forwards - done_at if done_at is not None else 0
        print(json.dumps({"file": str(path), "forwards": result.forwards, "first_line_at": done_at,
                          "middle": result.middle}))
    print(json.dumps({"forwards": total, "after_first_line": after}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
