"""`diffill bench lsp`: the language server measured from a real client.

A pygls client starts ``python -m lsp_server`` over stdio and measures:
  * end-to-end inline-completion latency (request sent -> response parsed),
    p50/p95, single-line completions at the middle of real code lines,
    explicitly invoked (no debounce) and never from the cache (every request
    follows an edit that changes the prefix);
  * server overhead = end-to-end - time inside the engine (the server reports
    per-request ``engineMs`` through ``diffill/stats``);
  * with a remote ``--backend`` against a loopback stand-in
    (``python tests/remote_standin.py KIND``): client overhead = end-to-end -
    the stand-in's own processing time, request by request (target p50 <= 3 ms);
  * resident memory (VmRSS from /proc/PID/status) of the server before and
    after 1,000 consecutive requests, measured after one warm-up pass over
    every cursor site (buffers sized by the longest prompt are not a leak;
    the RSS at the start is reported too).
Writes JSON.  Targets: overhead p50 <= 5 ms, end-to-end p50 <= 200 ms with
the bundled model, RSS growth <= 10 %.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

from engine.bench.report import write_json
from lsp_server.bench.client import BenchClient, server_options, shutdown
from lsp_server.bench.latency import summary
from lsp_server.bench.procstat import read_rss_kb
from lsp_server.bench.remote_overhead import client_overhead, fetch_processing_ms

TARGET_OVERHEAD_P50_MS = 5.0
TARGET_E2E_P50_MS = 200.0
TARGET_RSS_GROWTH_PCT = 10.0
URI = "file:///diffill-bench/source.py"


def register_bench(bench: argparse._SubParsersAction) -> None:
    p = bench.add_parser("lsp", help="language server latency, overhead and memory",
                         description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    from engine.arguments import add_backend_options

    add_backend_options(p)
    p.add_argument("--model", default=None, metavar="PATH_OR_ID",
                   help="model (default: the bundled model); with a remote --backend, the served model's name")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--dtype", default=None)
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the model")
    p.add_argument("--max-new-tokens", type=int, default=16, help="canvas size per request (default 16)")
    p.add_argument("--requests", type=int, default=200, help="latency requests (default 200)")
    p.add_argument("--memory-requests", type=int, default=1000, help="requests for the RSS test (default 1000)")
    p.add_argument("--warmup", type=int, default=5, help="warm-up requests (default 5)")
    p.add_argument("--memory-warmup", type=int, default=None, metavar="N",
                   help="requests before the RSS baseline (default: one pass over every cursor site, at most 400)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--source", type=Path, default=None, help="Python file to complete in (default: a stdlib module)")
    p.add_argument("--out", type=Path, default=Path("bench-results/lsp.json"), help="JSON output path")
    real = p.add_argument_group("real files (--files): latency at the server's default settings")
    real.add_argument("--files", type=Path, default=None, metavar="DIR",
                      help="measure invoked and automatic inline completions in real .py files of DIR "
                           "(lsp_server/bench/real_files.py); --max-new-tokens is ignored there")
    real.add_argument("--count", type=int, default=40, help="files (one cursor site each, default 40)")
    real.add_argument("--load", type=int, default=0, metavar="N",
                      help="busy processes competing for the CPU during the run (default 0)")
    real.add_argument("--typing-ms", type=int, default=120, help="milliseconds between typed keys (default 120)")
    real.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                      help="a server setting other than its default, e.g. --set debounceMs=0 (repeatable)")
    p.set_defaults(func=run_lsp_bench)


def run_lsp_bench(args: argparse.Namespace) -> int:
    """Entry point for `diffill bench lsp`; returns an exit code."""
    if args.files is not None:
        from lsp_server.bench.real_files import run_from_args

        return run_from_args(args)
    result = asyncio.run(_bench(args))
    write_json(result, args.out)
    _print_summary(result)
    print(f"wrote {args.out}")
    return 0 if result.get("error") is None else 1


def _default_source() -> Path:
    return Path(sysconfig.get_paths()["stdlib"]) / "json" / "decoder.py"


def _cursor_sites(text: str) -> list[tuple[int, int]]:
    """(line, character) in the middle of code lines: single-line infill sites."""
    sites = []
    for i, line in enumerate(text.split("\n")):
        body = line.strip()
        if len(body) >= 12 and not body.startswith(("#", '"', "'")) and line.isascii():
            indent = len(line) - len(line.lstrip())
            sites.append((i, indent + len(body) // 2))
    return sites


async def _bench(args: argparse.Namespace) -> dict[str, Any]:
    c = BenchClient()
    types = c.types
    client = c.client
    pid = await c.start()
    # no rate limit: a fast remote stand-in answers more than 50 requests a second
    options = server_options(args, debounceMs=0, maxNewTokens=args.max_new_tokens, multiline="never", cacheSize=256,
                             maxRequestsPerSecond=0)
    await c.initialize(options)
    source = (args.source or _default_source()).read_text(encoding="utf-8")
    sites = _cursor_sites(source)
    version = 1
    client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
        uri=URI, language_id="python", version=version, text=source)))
    counter = 0

    async def one(site_index: int) -> float:
        """Edit line 0 (so the state is new), then time one inline completion."""
        nonlocal version, counter
        counter += 1
        version += 1
        marker = f"# bench {counter}\n"
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=version),
            content_changes=[types.TextDocumentContentChangePartial(
                range=types.Range(start=types.Position(0, 0),
                                  end=types.Position(0 if counter == 1 else 1, 0)),
                text=marker)],
        ))
        line, char = sites[site_index % len(sites)]
        # line 0 is the marker line, which replaced (after the first edit) the previous marker
        params = types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=URI),
            position=types.Position(line + 1, char),
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
        )
        t0 = time.perf_counter()
        await client.text_document_inline_completion_async(params)
        return (time.perf_counter() - t0) * 1000.0

    stats = c.stats

    def say(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    result: dict[str, Any] = {"benchmark": "lsp", "pid": pid, "error": None}
    t_load = time.perf_counter()
    for i in range(max(args.warmup, 1)):
        await one(i)
    result["first_requests_s"] = round(time.perf_counter() - t_load, 3)
    s = await stats(reset=True)
    if not s.get("engineLoaded"):
        result["error"] = "model did not load: " + "; ".join(c.messages or c.stderr_tail[-3:])
        await shutdown(client)
        return result

    say(f"model loaded after {result['first_requests_s']} s; {args.requests} latency requests")
    remote_url = args.url if getattr(args, "backend", "local") != "local" else None
    if remote_url:
        fetch_processing_ms(remote_url)  # forget the warm-up requests' times
    e2e = []
    for i in range(args.requests):
        e2e.append(await one(args.warmup + i))
        if (i + 1) % 50 == 0:
            say(f"  {i + 1}/{args.requests}, last {e2e[-1]:.1f} ms")
    s = await stats(timings=True, reset=True)
    timings = [t for t in s["timings"] if t["kind"] == "inline"][-len(e2e):]
    engine_ms = [t["engineMs"] for t in timings]
    overhead = [a - b for a, b in zip(e2e, engine_ms)]
    result.update({
        "requests": len(e2e),
        "completed": s["completed"], "cache_hits": s["cacheHits"], "errors": s["errors"],
        "e2e_ms": summary(e2e),
        "engine_ms": summary(engine_ms),
        "overhead_ms": summary(overhead),
        "server_internal_ms": summary([t["serverMs"] for t in timings]),
        "queue_ms": summary([t["queueMs"] for t in timings]),
    })

    if remote_url:
        result.update(client_overhead(e2e, fetch_processing_ms(remote_url)))
    write_json(result | {"partial": "latency done, memory test running"}, args.out)
    # one pass over every cursor site first: the model's buffers grow with the
    # prompt length until the longest prompt was seen; that is not a leak
    warm = min(len(sites), 400) if args.memory_warmup is None else args.memory_warmup
    rss_start = read_rss_kb(pid)
    say(f"memory: {warm} warm-up requests, then {args.memory_requests}")
    for i in range(warm):
        await one(i)
    rss_before = read_rss_kb(pid)
    series = [rss_before]
    step = max(args.memory_requests // 10, 1)
    for i in range(args.memory_requests):
        await one(i)
        if (i + 1) % step == 0:
            series.append(read_rss_kb(pid))
            say(f"  {i + 1}/{args.memory_requests}, rss {series[-1]} kB")
    rss_after = read_rss_kb(pid)
    growth = 100.0 * (rss_after - rss_before) / rss_before
    result["memory"] = {"requests": args.memory_requests, "warmup_requests": warm,
                        "rss_at_start_kb": rss_start, "rss_before_kb": rss_before, "rss_after_kb": rss_after,
                        "growth_pct": round(growth, 2), "series_kb": series}
    result["model"] = c.ready("model", args.model)
    result["device"] = c.ready("device", args.device)
    result["settings"] = options
    result["targets"] = {
        "overhead_p50_ms": TARGET_OVERHEAD_P50_MS,
        "overhead_ok": result["overhead_ms"]["p50"] <= TARGET_OVERHEAD_P50_MS,
        "e2e_p50_ms": TARGET_E2E_P50_MS,
        "e2e_ok": result["e2e_ms"]["p50"] <= TARGET_E2E_P50_MS,
        "rss_growth_pct": TARGET_RSS_GROWTH_PCT,
        "rss_ok": growth <= TARGET_RSS_GROWTH_PCT,
    }
    await shutdown(client)
    return result


def _print_summary(r: dict[str, Any]) -> None:
    if r.get("error"):
        print(f"bench lsp: error: {r['error']}")
        return
    print(f"model {r.get('model')} on {r.get('device')}, {r['requests']} requests")
    for key in ("e2e_ms", "engine_ms", "overhead_ms", "server_internal_ms", "server_processing_ms",
                "client_overhead_ms"):
        v = r.get(key)
        if v:
            print(f"  {key:20s} p50 {v['p50']:9.3f}  p95 {v['p95']:9.3f}")
    if r.get("client_overhead_note"):
        print(f"  client overhead: {r['client_overhead_note']}")
    m = r["memory"]
    print(f"  rss {m['rss_before_kb']} -> {m['rss_after_kb']} kB over {m['requests']} requests "
          f"({m['growth_pct']:+.2f} %)")
    t = r["targets"]
    print(f"  targets: overhead {'ok' if t['overhead_ok'] else 'MISSED'}, e2e {'ok' if t['e2e_ok'] else 'MISSED'}, "
          f"rss {'ok' if t['rss_ok'] else 'MISSED'}")
    if r.get("client_overhead_target"):
        ok = r["client_overhead_target"]["ok"]
        print(f"  client overhead p50 <= {r['client_overhead_target']['p50_ms']:g} ms: {'ok' if ok else 'MISSED'}")
