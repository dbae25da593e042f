"""`diffill bench remote-fim`: single-line requests through diffill's remote backend
against a direct FIM call to the same llama-server, same cases, interleaved.

The direct call is the plain one a client sends without stop rules (``POST
/infill`` with ``input_prefix``, ``input_suffix``, ``n_predict``: what diffill
itself sent before issue 26): the server generates until the model ends or
``n_predict`` runs out.  diffill's request is a single-line one
(``InfillRequest.single_line``): stop at the line break, closed once the line
is complete.  Per case and per side: the tokens the server generated (its
``tokens_predicted``) and the wall time of the request; the two alternate in
order case by case, so that load on the machine falls on both alike.  Before
each case one direct call of one token reads the prompt into the server's
cache (``cache_prompt``), so both sides are timed on a cached prompt: the
difference is generation and the client, not who came first.
"""
from __future__ import annotations

import json
import statistics
import time
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

from engine.bench.datasets import InfillCase
from engine.bench.metrics import percentile
from engine.types import InfillRequest


def direct_fim(url: str, case: InfillCase, n_predict: int) -> tuple[str, int]:
    """One plain ``POST /infill`` (no stop rule, not streamed): (content, tokens generated)."""
    body = {"input_prefix": case.prefix, "input_suffix": case.suffix, "n_predict": n_predict,
            "temperature": 0.0, "cache_prompt": True, "stream": False}
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the same route the client takes
    request = urllib.request.Request(url.rstrip("/") + "/infill", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with opener.open(request, timeout=300) as response:
        data = json.loads(response.read())
    return str(data.get("content", "")), int(data.get("tokens_predicted", 0))


def first_line(text: str) -> str:
    """What a single-line suggestion shows of a middle (leading line breaks skipped)."""
    return text.lstrip("\r\n").split("\n", 1)[0].rstrip("\r")


def run_remote_fim(engine: Any, url: str, cases: Sequence[InfillCase], max_new_tokens: int, warmup: int = 2,
                   progress: Callable[[int, str], Any] | None = None) -> dict[str, Any]:
    """Both sides over ``cases``, interleaved; rows per case and a summary."""
    def diffill(case: InfillCase) -> tuple[str, int]:
        result = engine.infill(InfillRequest(prefix=case.prefix, suffix=case.suffix, max_new_tokens=max_new_tokens,
                                             single_line=True))
        return result.middle, int(result.tokens)

    def direct(case: InfillCase) -> tuple[str, int]:
        return direct_fim(url, case, max_new_tokens)

    for case in cases[:warmup]:  # the first requests pay for loading caches on both sides
        diffill(case)
        direct(case)
    bar = progress(len(cases), "cases") if progress else None
    rows = []
    for i, case in enumerate(cases):
        direct_fim(url, case, 1)  # the prompt into the server's cache, for both sides alike
        order = [("diffill", diffill), ("direct", direct)]
        if i % 2:
            order.reverse()
        row: dict[str, Any] = {"task_id": case.task_id}
        for name, call in order:
            start = time.perf_counter()
            text, tokens = call(case)
            row[name] = {"ms": round((time.perf_counter() - start) * 1000.0, 3), "tokens": tokens,
                         "line": first_line(text)}
        row["same_line"] = row["diffill"]["line"] == row["direct"]["line"].lstrip(" ") or \
            row["diffill"]["line"] == row["direct"]["line"]
        rows.append(row)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return {"rows": rows, "summary": summarize(rows), "max_new_tokens": max_new_tokens}


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("diffill", "direct"):
        ms = [r[name]["ms"] for r in rows]
        tokens = [r[name]["tokens"] for r in rows]
        out[name] = {"p50_ms": percentile(ms, 50), "p95_ms": percentile(ms, 95),
                     "tokens_mean": round(statistics.fmean(tokens), 2) if tokens else None,
                     "tokens_median": statistics.median(tokens) if tokens else None, "n": len(rows)}
    out["same_first_line"] = sum(bool(r["same_line"]) for r in rows)
    return out


def table(result: dict[str, Any]) -> str:
    s = result["summary"]
    lines = [f"{'':<34}{'p50 ms':>10}{'p95 ms':>10}{'tokens mean':>13}{'median':>8}"]
    for name, label in (("diffill", "diffill llamacpp, single line"),
                        ("direct", f"direct /infill, n_predict {result['max_new_tokens']}")):
        r = s[name]
        lines.append(f"{label:<34}{r['p50_ms']:>10.1f}{r['p95_ms']:>10.1f}{r['tokens_mean']:>13}"
                     f"{r['tokens_median']:>8}")
    lines.append(f"same first line: {s['same_first_line']} of {s['diffill']['n']} cases")
    return "\n".join(lines)
