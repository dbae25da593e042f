"""`diffill bench soak`: a long, mixed editing session against the real server,
looking for leaks and slow-downs that short benchmarks cannot see.

A pygls client starts ``python -m lsp_server`` over stdio (bundled model, CPU,
by default) and plays ``--requests`` requests (default 10,000) against many
documents made from real Python sources (stdlib modules), which it opens,
closes and reopens over the run.  Each step picks, with a seeded RNG, an edit
(typing one keystroke per ``didChange``, backspaces, line deletions, pastes)
and then one request: an invoked (or automatic, with ``debounceMs`` 0) inline
completion, a completion, or the ``diffill.fillInTheMiddle`` command, whose
``workspace/applyEdit`` the client applies to its copy of the document and
reports back with ``didChange`` like an editor would.  A request is then
  * awaited ("normal"; its latency is what the drift target measures),
  * cancelled with ``$/cancelRequest`` after a random 0-50 ms, or
  * superseded by a keystroke in the same document after a random 0-50 ms.
Every request must get a response: a result, or RequestCancelled (-32800) /
ServerCancelled (-32802).  Any other error, no response within
``RESPONSE_TIMEOUT_S``, a ``window/showMessage`` of type Error (an error pop-up
in the editor) or a ``window/logMessage`` of type Error (e.g. the server
ignoring a ``didChange`` it cannot apply: client and server disagree about a
document) is a failure.

Targets (the verdict is in the JSON and the summary; exit code 1 if one fails):
  * failures == 0;
  * resident memory (VmRSS) growth <= 10 % from the end of warm-up (the
    first 10 % of the requests: the model's buffers grow with the longest
    prompt seen and the LRU cache fills; neither is a leak) to the end;
  * thread count at the end <= after warm-up + ``THREAD_SLACK`` (2).  The
    server's threads are the asyncio loop, the one engine thread and torch's
    fixed intra-op pool; the only others come from lazily filled, bounded
    pools (pygls' and asyncio's default executors), which may add a thread
    the warm-up did not need.  That is bounded growth, not a leak; a leak
    (a thread per request, per document or per cancellation) adds hundreds
    over 9,000 requests, so a slack of 2 cannot hide one;
  * p95 drift: the p95 end-to-end latency of the last window of normal
    requests (``--window``, default 2,000) <= 1.2 x that of the first window
    after warm-up.  A p95 over 2,000 requests moves by a few percent between
    windows of a steady run on a quiet machine, while a per-request cost that
    grows with what the server has accumulated (a list scanned per request,
    an unbounded cache, GC over a growing heap) grows without bound over a
    long run, so 20 % separates the two.  The two CPU cores are shared: the
    JSON records the load average and the server's CPU time per sample, and
    a drift that coincides with a rise in load (and not in server CPU time per
    request) is the machine, not the server; rerun it quiet.
Also reported: documents the server holds vs the client has open (a document
leak), requests, cancelled, superseded, errors, wall time, and a sample of RSS,
threads, load and latency every ``--requests``/50 requests.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from engine.bench.report import write_json
from lsp_server.bench.soak.report import print_summary
from lsp_server.bench.soak.runner import Soak


def register_bench(bench: argparse._SubParsersAction) -> None:
    p = bench.add_parser("soak", help="long mixed session: memory, threads and latency drift",
                         description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=10_000, help="requests in the run (default 10000)")
    p.add_argument("--documents", type=int, default=30, help="documents open at a time (default 30)")
    p.add_argument("--seed", type=int, default=0, help="workload RNG seed (default 0)")
    p.add_argument("--cancel-fraction", type=float, default=0.15,
                   help="requests cancelled with $/cancelRequest (default 0.15)")
    p.add_argument("--supersede-fraction", type=float, default=0.15,
                   help="requests superseded by a keystroke (default 0.15)")
    p.add_argument("--warmup-fraction", type=float, default=0.1, help="warm-up share of the requests (default 0.1)")
    p.add_argument("--window", type=int, default=2000,
                   help="normal requests per latency window for the drift target (default 2000)")
    p.add_argument("--model", default=None, metavar="PATH_OR_ID", help="model (default: the bundled model)")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"], help="(default cpu)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the model")
    p.add_argument("--max-new-tokens", type=int, default=8, help="canvas size per request (default 8)")
    p.add_argument("--out", type=Path, default=Path("bench-results/soak.json"), help="JSON output path")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=run_soak)


def run_soak(args: argparse.Namespace) -> int:
    """Entry point for `diffill bench soak`; 1 if a target failed or the run broke."""
    problem = _check_args(args)
    if problem:
        print(f"diffill bench soak: error: {problem}", file=sys.stderr)
        return 2
    report = asyncio.run(Soak(args).run())
    write_json(report, args.out)
    print_summary(report)
    print(f"wrote {args.out}")
    return 0 if report.get("error") is None and report["verdict"]["ok"] else 1


def _check_args(args: argparse.Namespace) -> str | None:
    if args.requests < 20:
        return "--requests must be at least 20 (a warm-up and two latency windows)"
    if not 2 <= args.documents <= 200:
        return "--documents must be in 2..200"
    if not (args.cancel_fraction >= 0 and args.supersede_fraction >= 0
            and args.cancel_fraction + args.supersede_fraction <= 0.9):
        return "--cancel-fraction + --supersede-fraction must be in 0..0.9 (normal requests are measured)"
    if not 0 < args.warmup_fraction < 0.5:
        return "--warmup-fraction must be in (0, 0.5)"
    return None
