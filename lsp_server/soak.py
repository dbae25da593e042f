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
import bisect
import math
import os
import random
import re
import sys
import sysconfig
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# the module, not its names: `diffill` builds every bench parser at start-up, and a
# test may stand in for lsp_server.benchmark with a stub while it does
from lsp_server import benchmark as lsp_bench

TARGET_RSS_GROWTH_PCT = 10.0
TARGET_P95_DRIFT = 1.2
THREAD_SLACK = 2
RESPONSE_TIMEOUT_S = 120.0
FILL_COMMAND = "diffill.fillInTheMiddle"
URI_ROOT = "file:///diffill-soak/"
#: most requests left running in the background (cancelled / superseded ones)
MAX_PENDING = 8
#: largest random delay before a cancel or a superseding keystroke (seconds)
MAX_CANCEL_DELAY_S = 0.05
REQUEST_CANCELLED, SERVER_CANCELLED = -32800, -32802

_BREAK = re.compile(r"\r\n|\r|\n")
_SNIPPETS = ["x", "self.", "value", " = ", "return ", "(", ")", "len(items)", "if not ", "for i in range(",
             "data[key]", ", ", "None", "result.append(", "raise ValueError(", "    ", "else:", "#"]


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
    lsp_bench.write_json(args.out, report)
    print_summary(report)
    print(f"wrote {args.out}")
    return 0 if report.get("error") is None and report["verdict"]["ok"] else 1


def _check_args(args: argparse.Namespace) -> str | None:
    if args.requests < 20:
        return "--requests must be at least 20 (a warm-up and two latency windows)"
    if not 2 <= args.documents <= 200:
        return "--documents must be in 2..200"
    if not (0 <= args.cancel_fraction and 0 <= args.supersede_fraction
            and args.cancel_fraction + args.supersede_fraction <= 0.9):
        return "--cancel-fraction + --supersede-fraction must be in 0..0.9 (normal requests are measured)"
    if not 0 < args.warmup_fraction < 0.5:
        return "--warmup-fraction must be in (0, 0.5)"
    return None


# --- verdict (pure: the tests feed it leaks) -----------------------------------

def verdict(m: dict[str, Any]) -> dict[str, Any]:
    """Pass/fail per target from the measured figures."""
    rss = 100.0 * (m["rss_end_kb"] - m["rss_warm_kb"]) / m["rss_warm_kb"]
    threads = m["threads_end"] - m["threads_warm"]
    first, last = m["p95_first_ms"], m["p95_last_ms"]
    drift = last / first if first and first > 0 and math.isfinite(first) and math.isfinite(last) else math.nan
    targets = {
        "failures": _target(m["failures"], 0, m["failures"] == 0),
        "rss_growth_pct": _target(round(rss, 2), TARGET_RSS_GROWTH_PCT, rss <= TARGET_RSS_GROWTH_PCT),
        "thread_growth": _target(threads, THREAD_SLACK, threads <= THREAD_SLACK),
        "p95_drift": _target(round(drift, 3), TARGET_P95_DRIFT, drift <= TARGET_P95_DRIFT),  # nan fails
        "documents_match": _target(m["server_documents"], m["client_documents"],
                                   m["server_documents"] == m["client_documents"]),
        # a soak that never cancelled anything did not test cancellation
        "cancellations_seen": _target(m["cancelled"], ">= 1", m["cancelled"] > 0 or not m["cancel_expected"]),
    }
    return {"ok": all(t["ok"] for t in targets.values()), "targets": targets}


def _target(value: Any, limit: Any, ok: bool) -> dict[str, Any]:
    return {"value": value, "limit": limit, "ok": bool(ok)}


# --- /proc readings ---------------------------------------------------------------

def read_threads(pid: int) -> int:
    return lsp_bench.proc_status(pid, "Threads")


def thread_names(pid: int) -> dict[str, int]:
    """Thread names (comm) and how many of each: which pool grew."""
    names: Counter[str] = Counter()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            names[(task / "comm").read_text().strip()] += 1
        except OSError:
            pass  # the thread ended meanwhile
    return dict(sorted(names.items()))


def read_cpu_s(pid: int) -> float:
    """User + system CPU seconds of the server."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the client's copy of a document -------------------------------------------

class MirrorDoc:
    """What an editor's buffer is: the text the server must also have."""

    def __init__(self, uri: str, text: str, version: int) -> None:
        self.uri = uri
        self.text = text
        self.version = version
        self.original_len = len(text)
        self._starts: list[int] | None = None

    @property
    def starts(self) -> list[int]:
        if self._starts is None:
            self._starts = [0] + [m.end() for m in _BREAK.finditer(self.text)]
        return self._starts

    def line_count(self) -> int:
        return len(self.starts)

    def line(self, n: int) -> str:
        """Line ``n`` without its line break."""
        s = self.starts
        end = s[n + 1] if n + 1 < len(s) else len(self.text)
        return self.text[s[n]:end].rstrip("\r\n")

    def offset(self, line: int, character: int) -> int:
        """String index of an LSP position (UTF-16 columns)."""
        text = self.line(line)
        if text.isascii():
            return self.starts[line] + min(character, len(text))
        units = 0
        for i, ch in enumerate(text):
            if units >= character:
                return self.starts[line] + i
            units += 2 if ord(ch) > 0xFFFF else 1
        return self.starts[line] + len(text)

    def position(self, index: int) -> tuple[int, int]:
        """LSP (line, UTF-16 character) of a string index."""
        line = bisect.bisect_right(self.starts, index) - 1
        head = self.text[self.starts[line]:index]
        return line, len(head) + sum(1 for ch in head if ord(ch) > 0xFFFF)

    def replace(self, start: int, end: int, text: str) -> None:
        self.text = self.text[:start] + text + self.text[end:]
        self._starts = None


def pick_sources(count: int, rng: random.Random) -> list[Path]:
    """``count`` ASCII stdlib modules of 4-60 kB (real code, stable across runs)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = []
    for path in sorted(stdlib.glob("*.py")) + sorted(stdlib.glob("*/*.py")):
        if "test" in path.parts or "idlelib" in path.parts or not 4_000 <= path.stat().st_size <= 60_000:
            continue
        try:
            if path.read_bytes().isascii():
                files.append(path)
        except OSError:
            continue
    if len(files) < count:
        raise RuntimeError(f"only {len(files)} usable stdlib sources for {count} documents")
    return rng.sample(files, count)


# --- bookkeeping --------------------------------------------------------------------

@dataclass
class Req:
    """One request and what became of it."""

    index: int
    kind: str
    mode: str  # normal | cancel | supersede
    uri: str
    t0: float = 0.0
    t1: float | None = None
    outcome: str = "missing"  # result | cancelled | error | missing
    detail: str = ""
    nonempty: bool = False
    #: the document changed while it ran (by an applied fill): not a clean latency
    edited: bool = False
    msg_id: str = ""
    task: asyncio.Task | None = None

    @property
    def ms(self) -> float:
        return ((self.t1 or self.t0) - self.t0) * 1000.0


@dataclass
class Totals:
    edits: int = 0
    opens: int = 0
    closes: int = 0
    applied_edits: int = 0
    refused_edits: int = 0
    drafts: int = 0
    server: Counter[str] = field(default_factory=Counter)


# --- the run --------------------------------------------------------------------------

class Soak:
    """Plays the workload against one server process and measures it."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.c = lsp_bench.BenchClient("diffill-soak")
        self.types = self.c.types
        self.docs: dict[str, MirrorDoc] = {}  # open documents
        self.pool: dict[str, Path] = {}  # every document the run may open
        self.versions: dict[str, int] = {}  # last version per URI (monotonic across reopen)
        self.reqs: list[Req] = []
        self.pending: set[asyncio.Task] = set()
        self.samples: list[dict[str, Any]] = []
        self.totals = Totals()
        self.pid = 0
        self._since_sample = 0
        self._register_handlers()

    def say(self, message: str) -> None:
        if not self.args.quiet:
            print(message, file=sys.stderr, flush=True)

    # -- client handlers ------------------------------------------------------
    def _register_handlers(self) -> None:
        types = self.types
        client = self.c.client

        @client.feature(types.WORKSPACE_APPLY_EDIT)
        def _apply(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
            return self._apply_edit(params.edit)

        @client.feature("diffill/draft")
        def _draft(params: Any) -> None:
            self.totals.drafts += 1

    def _apply_edit(self, edit: Any) -> Any:
        """Apply the fill like an editor: only to the version it was made for."""
        types = self.types
        groups = [(d.text_document.uri, d.text_document.version, d.edits) for d in edit.document_changes or []]
        groups += [(uri, None, edits) for uri, edits in (edit.changes or {}).items()]  # unversioned
        for uri, version, edits in groups:
            doc = self.docs.get(uri)
            if doc is None or (version is not None and doc.version != version):
                self.totals.refused_edits += 1
                return types.ApplyWorkspaceEditResult(applied=False, failure_reason="document version changed")
            # every range refers to the text before the edit: apply from the end
            for e in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True):
                start = doc.offset(e.range.start.line, e.range.start.character)
                end = doc.offset(e.range.end.line, e.range.end.character)
                self._change(doc, start, end, e.new_text)
            self.totals.applied_edits += 1
        return types.ApplyWorkspaceEditResult(applied=True)

    # -- documents ------------------------------------------------------------
    def _open(self, uri: str) -> None:
        text = self.pool[uri].read_text(encoding="utf-8")
        version = self.versions.get(uri, 0) + 1
        self.versions[uri] = version
        self.docs[uri] = MirrorDoc(uri, text, version)
        self.c.client.text_document_did_open(self.types.DidOpenTextDocumentParams(
            text_document=self.types.TextDocumentItem(uri=uri, language_id="python", version=version, text=text)))
        self.totals.opens += 1

    def _close(self, uri: str) -> None:
        del self.docs[uri]
        self.c.client.text_document_did_close(self.types.DidCloseTextDocumentParams(
            text_document=self.types.TextDocumentIdentifier(uri=uri)))
        self.totals.closes += 1

    def _churn(self) -> None:
        """Now and then close a document and open another (or the same again)."""
        if self.rng.random() >= 0.01:
            return
        self._close(self.rng.choice(sorted(self.docs)))
        self._open(self.rng.choice(sorted(set(self.pool) - set(self.docs))))

    def _change(self, doc: MirrorDoc, start: int, end: int, text: str) -> None:
        """One incremental didChange, computed against the client's current text."""
        types = self.types
        (l0, c0), (l1, c1) = doc.position(start), doc.position(end)
        doc.version += 1
        self.versions[doc.uri] = doc.version
        self.c.client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=doc.uri, version=doc.version),
            content_changes=[types.TextDocumentContentChangePartial(
                range=types.Range(start=types.Position(l0, c0), end=types.Position(l1, c1)), text=text)]))
        doc.replace(start, end, text)
        self.totals.edits += 1
        for req in self.reqs[-MAX_PENDING * 4:]:
            if req.uri == doc.uri and req.t1 is None:
                req.edited = True

    # -- edits ----------------------------------------------------------------------
    def _site(self, doc: MirrorDoc) -> int:
        """A string index in the middle of some code line."""
        for _ in range(20):
            n = self.rng.randrange(doc.line_count())
            text = doc.line(n)
            body = text.strip()
            if len(body) >= 4:
                indent = len(text) - len(text.lstrip())
                return doc.starts[n] + indent + self.rng.randint(1, len(body))
        return doc.starts[self.rng.randrange(doc.line_count())]

    def _edit(self, doc: MirrorDoc) -> int:
        """A random edit of ``doc``; returns the cursor after it (a string index)."""
        rng = self.rng
        size = len(doc.text) / max(doc.original_len, 1)
        r = rng.random()
        if size > 1.25 or (size >= 0.75 and r < 0.08):
            return self._delete_lines(doc)
        if size < 0.75 or r < 0.18:
            return self._paste(doc)
        if r < 0.33:
            return self._backspace(doc)
        if r < 0.83:
            return self._type(doc)
        return self._site(doc)  # no edit: ask somewhere else

    def _type(self, doc: MirrorDoc) -> int:
        at = self._site(doc)
        snippet = self.rng.choice(_SNIPPETS)
        for ch in snippet[: self.rng.randint(1, len(snippet))]:
            self._change(doc, at, at, ch)
            at += 1
        return at

    def _backspace(self, doc: MirrorDoc) -> int:
        at = self._site(doc)
        line_start = doc.starts[doc.position(at)[0]]
        for _ in range(min(self.rng.randint(1, 4), at - line_start)):
            self._change(doc, at - 1, at, "")
            at -= 1
        return at

    def _paste(self, doc: MirrorDoc) -> int:
        n = doc.line_count()
        a = self.rng.randrange(n)
        b = min(n - 1, a + self.rng.randint(1, 6))
        chunk = doc.text[doc.starts[a]:doc.starts[b]] if b > a else doc.line(a) + "\n"
        at = doc.starts[self.rng.randrange(n)]
        self._change(doc, at, at, chunk)
        return at + len(chunk)

    def _delete_lines(self, doc: MirrorDoc) -> int:
        n = doc.line_count()
        a = self.rng.randrange(max(n - 1, 1))
        b = min(n - 1, a + self.rng.randint(1, 8))
        if b > a:
            self._change(doc, doc.starts[a], doc.starts[b], "")
        return self._site(doc)

    # -- requests ------------------------------------------------------------------
    def _request(self, index: int, doc: MirrorDoc, at: int, mode: str) -> Req:
        kind = self.rng.choices(["inline", "completion", "command"], [0.5, 0.3, 0.2])[0]
        method, params = self._params(kind, doc, at)
        req = Req(index, kind, mode, doc.uri, msg_id=f"soak-{index}")
        req.t0 = time.perf_counter()
        future = self.c.client.protocol.send_request(method, params, msg_id=req.msg_id)
        future.add_done_callback(lambda _f: setattr(req, "t1", time.perf_counter()))
        task = asyncio.ensure_future(self._track(req, asyncio.wrap_future(future)))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)
        self.reqs.append(req)
        req.task = task
        return req

    def _params(self, kind: str, doc: MirrorDoc, at: int) -> tuple[str, Any]:
        types = self.types
        line, char = doc.position(at)
        ident = types.TextDocumentIdentifier(uri=doc.uri)
        pos = types.Position(line, char)
        if kind == "inline":
            trigger = (types.InlineCompletionTriggerKind.Invoked if self.rng.random() < 0.8
                       else types.InlineCompletionTriggerKind.Automatic)
            return types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionParams(
                text_document=ident, position=pos, context=types.InlineCompletionContext(trigger_kind=trigger))
        if kind == "completion":
            return types.TEXT_DOCUMENT_COMPLETION, types.CompletionParams(
                text_document=ident, position=pos,
                context=types.CompletionContext(trigger_kind=types.CompletionTriggerKind.Invoked))
        arg: dict[str, Any] = {"uri": doc.uri, "position": {"line": line, "character": char}}
        if self.rng.random() < 0.3:  # a selection: part of the line, or whole lines (a block)
            end_line = min(line + self.rng.randint(0, 2), doc.line_count() - 1)
            end = doc.starts[end_line] if end_line > line else doc.starts[line] + len(doc.line(line))
            end_line, end_char = doc.position(end)
            arg = {"uri": doc.uri,
                   "range": {"start": arg["position"], "end": {"line": end_line, "character": end_char}}}
        return types.WORKSPACE_EXECUTE_COMMAND, types.ExecuteCommandParams(command=FILL_COMMAND, arguments=[arg])

    async def _track(self, req: Req, future: asyncio.Future) -> None:
        try:
            result = await asyncio.wait_for(future, RESPONSE_TIMEOUT_S)
        except asyncio.TimeoutError:
            req.outcome, req.detail = "missing", f"no response in {RESPONSE_TIMEOUT_S:.0f} s"
        except asyncio.CancelledError:
            req.outcome, req.detail = "missing", "client stopped"
        except Exception as exc:  # noqa: BLE001 - every error response is classified
            code = getattr(exc, "code", None)
            cancelled = code in (REQUEST_CANCELLED, SERVER_CANCELLED)
            req.outcome = "cancelled" if cancelled else "error"
            req.detail = f"{code}: {exc}"[:200]
        else:
            req.outcome = "result"
            req.nonempty = _nonempty(result)

    async def _cancel_later(self, req: Req) -> None:
        await asyncio.sleep(self.rng.uniform(0, MAX_CANCEL_DELAY_S))
        self.c.client.protocol.notify(self.types.CANCEL_REQUEST,
                                      self.types.CancelParams(id=req.msg_id))

    async def _supersede_later(self, req: Req, doc: MirrorDoc, at: int) -> None:
        await asyncio.sleep(self.rng.uniform(0, MAX_CANCEL_DELAY_S))
        if doc.uri in self.docs:
            at = min(at, len(doc.text))
            self._change(doc, at, at, self.rng.choice("abcxyz_ ."))

    async def _bound_pending(self) -> None:
        while len(self.pending) > MAX_PENDING:
            await asyncio.wait(self.pending, return_when=asyncio.FIRST_COMPLETED)

    async def _drain(self) -> None:
        if self.pending:
            await asyncio.wait(self.pending)

    # -- one step ---------------------------------------------------------------------
    async def _step(self, index: int) -> None:
        self._churn()
        doc = self.docs[self.rng.choice(sorted(self.docs))]
        at = self._edit(doc)
        r = self.rng.random()
        a = self.args
        mode = "cancel" if r < a.cancel_fraction else "supersede" if r < a.cancel_fraction + a.supersede_fraction \
            else "normal"
        req = self._request(index, doc, at, mode)
        if mode == "normal":
            await req.task
        elif mode == "cancel":
            await self._cancel_later(req)
        else:
            await self._supersede_later(req, doc, at)
        await self._bound_pending()

    # -- measurements ---------------------------------------------------------------
    async def _sample(self, index: int, t_start: float) -> None:
        """RSS, threads, load and the latency of the normal requests since the last sample."""
        stats = await self.c.stats(timings=True, reset=True)
        self._add_server_counts(stats)
        recent = [r for r in self.reqs[self._since_sample:] if _clean(r)]
        self._since_sample = len(self.reqs)
        engine = [t["engineMs"] for t in stats.get("timings", []) if t["outcome"] == "completed"]
        server = [t["serverMs"] for t in stats.get("timings", []) if t["outcome"] == "completed"]
        self.samples.append({
            "request": index, "t_s": round(time.perf_counter() - t_start, 2),
            "rss_kb": lsp_bench.read_rss_kb(self.pid), "threads": read_threads(self.pid),
            "cpu_s": round(read_cpu_s(self.pid), 2), "load1": round(os.getloadavg()[0], 2),
            "pending": len(self.pending),
            "e2e_p50_ms": _r(lsp_bench.percentile([r.ms for r in recent], 0.5)),
            "e2e_p95_ms": _r(lsp_bench.percentile([r.ms for r in recent], 0.95)),
            "engine_p95_ms": _r(lsp_bench.percentile(engine, 0.95)),
            "server_p95_ms": _r(lsp_bench.percentile(server, 0.95)),
        })

    def _add_server_counts(self, stats: dict[str, Any]) -> None:
        for key in ("requests", "engineStarted", "completed", "cancelled", "engineCancelled", "cacheHits", "errors"):
            self.totals.server[key] += int(stats.get(key, 0))

    def _snapshot(self) -> dict[str, Any]:
        return {"rss_kb": lsp_bench.read_rss_kb(self.pid), "threads": read_threads(self.pid),
                "thread_names": thread_names(self.pid), "load1": round(os.getloadavg()[0], 2)}

    async def _load_model(self) -> str | None:
        """One request outside the count, so the load is not in any latency; an
        error message if the model did not load."""
        doc = self.docs[sorted(self.docs)[0]]
        req = self._request(-1, doc, self._site(doc), "normal")
        await req.task
        self.reqs.clear()
        stats = await self.c.stats(reset=True)
        if not stats.get("engineLoaded"):
            return "model did not load: " + "; ".join(self.c.messages or self.c.stderr_tail[-3:])
        return None

    # -- the whole run --------------------------------------------------------------
    async def run(self) -> dict[str, Any]:
        a = self.args
        report: dict[str, Any] = {"benchmark": "soak", "error": None, "settings": vars_json(a)}
        sources = pick_sources(2 * a.documents, self.rng)
        self.pool = {f"{URI_ROOT}{i:03d}-{p.parent.name}-{p.name}": p for i, p in enumerate(sources)}
        self.pid = await self.c.start()
        options = lsp_bench.server_options(a, debounceMs=0, maxNewTokens=a.max_new_tokens)
        await self.c.initialize(options, self._capabilities())
        for uri in list(self.pool)[: a.documents]:
            self._open(uri)
        t_load = time.perf_counter()
        report["error"] = await self._load_model()
        report["model_load_s"] = round(time.perf_counter() - t_load, 2)
        if report["error"] is None:
            report |= await self._play()
        report["server_stderr_tail"] = self.c.stderr_tail[-5:]
        await lsp_bench.shutdown(self.c.client)
        return report

    async def _play(self) -> dict[str, Any]:
        a = self.args
        n = a.requests
        warm_n = max(1, int(n * a.warmup_fraction))
        every = max(1, n // 50)
        start, t0 = self._snapshot(), time.perf_counter()
        warm: dict[str, Any] = {}
        for i in range(n):
            if i == warm_n:
                await self._drain()
                warm = self._snapshot() | {"request": i}
            if i % every == 0:
                await self._sample(i, t0)
            await self._step(i)
            if (i + 1) % max(1, n // 20) == 0:
                s = self.samples[-1]
                self.say(f"  {i + 1}/{n}, rss {s['rss_kb']} kB, threads {s['threads']}, "
                         f"p95 {s['e2e_p95_ms']} ms, load {s['load1']}")
        await self._drain()
        await self._sample(n, t0)
        wall = time.perf_counter() - t0
        end = self._snapshot()
        stats = await self.c.stats()
        return self._results(warm_n, start, warm, end, stats, wall)

    def _results(self, warm_n: int, start: dict, warm: dict, end: dict, stats: dict, wall: float) -> dict[str, Any]:
        a = self.args
        clean = [r.ms for r in self.reqs if r.index >= warm_n and _clean(r)]
        w = min(a.window, len(clean) // 2)  # two windows that do not overlap
        first, last = clean[:w], clean[len(clean) - w:]
        outcomes = Counter(r.outcome for r in self.reqs)
        failures = [r for r in self.reqs if r.outcome in ("error", "missing")]
        measured = {
            "rss_warm_kb": warm["rss_kb"], "rss_end_kb": end["rss_kb"],
            "threads_warm": warm["threads"], "threads_end": end["threads"],
            "p95_first_ms": lsp_bench.percentile(first, 0.95) if w else math.nan,
            "p95_last_ms": lsp_bench.percentile(last, 0.95) if w else math.nan,
            "failures": len(failures) + len(self.c.log_errors) + len(self.c.shown_errors),
            "server_documents": stats.get("documents"), "client_documents": len(self.docs),
            "cancelled": outcomes["cancelled"], "cancel_expected": a.cancel_fraction > 0,
        }
        ready = [s for s in self.c.statuses if _get(s, "state") == "ready"]
        return {
            "model": _get(ready[-1], "model") if ready else a.model,
            "device": _get(ready[-1], "device") if ready else a.device,
            "wall_s": round(wall, 1), "requests_per_s": round(len(self.reqs) / wall, 2),
            "requests": len(self.reqs), "warmup_requests": warm_n,
            "by_kind": dict(Counter(r.kind for r in self.reqs)),
            "by_mode": dict(Counter(r.mode for r in self.reqs)),
            "outcomes": dict(outcomes),
            "cancelled_by_code": dict(Counter(r.detail.split(":")[0] for r in self.reqs if r.outcome == "cancelled")),
            "superseded_empty": sum(1 for r in self.reqs if r.mode == "supersede" and r.outcome == "result"
                                    and not r.nonempty),
            "nonempty_results": sum(1 for r in self.reqs if r.nonempty),
            "failures": [{"index": r.index, "kind": r.kind, "mode": r.mode, "outcome": r.outcome,
                          "detail": r.detail} for r in failures[:20]],
            "log_errors": self.c.log_errors[:20],
            "shown_errors": {"count": len(self.c.shown_errors), "distinct": _distinct(self.c.shown_errors)},
            "messages_shown": len(self.c.messages),
            "client": {"edits": self.totals.edits, "opens": self.totals.opens, "closes": self.totals.closes,
                       "fills_applied": self.totals.applied_edits, "fills_refused": self.totals.refused_edits,
                       "drafts": self.totals.drafts},
            "server_counters": dict(self.totals.server),
            "server_end": {k: stats.get(k) for k in ("documents", "cacheEntries", "engineLoaded")},
            "memory": {"rss_start_kb": start["rss_kb"], "rss_warm_kb": warm["rss_kb"], "rss_end_kb": end["rss_kb"],
                       "rss_max_kb": max(s["rss_kb"] for s in self.samples)},
            "threads": {"start": start["threads"], "warm": warm["threads"], "end": end["threads"],
                        "max": max(s["threads"] for s in self.samples),
                        "names_warm": warm["thread_names"], "names_end": end["thread_names"]},
            "latency": {"window": w, "normal_after_warmup": len(clean),
                        "first_window_ms": lsp_bench.summary(first), "last_window_ms": lsp_bench.summary(last),
                        "all_after_warmup_ms": lsp_bench.summary(clean)},
            "load1": {"start": start["load1"], "warm": warm["load1"], "end": end["load1"]},
            "verdict": verdict(measured),
            "samples": self.samples,
        }

    def _capabilities(self) -> Any:
        types = self.types
        return types.ClientCapabilities(
            window=types.WindowClientCapabilities(work_done_progress=True),
            workspace=types.WorkspaceClientCapabilities(
                apply_edit=True, workspace_edit=types.WorkspaceEditClientCapabilities(document_changes=True)))


# --- helpers ----------------------------------------------------------------------------

def _clean(r: Req) -> bool:
    """A normal request answered with a result, its document untouched meanwhile."""
    return r.mode == "normal" and r.outcome == "result" and not r.edited and r.t1 is not None


def _nonempty(result: Any) -> bool:
    if isinstance(result, dict):
        return bool(result.get("text"))
    items = getattr(result, "items", None)
    return bool(items)


def _distinct(messages: list[str], limit: int = 10) -> dict[str, int]:
    """The most common messages, addresses (0x...) masked so repeats group."""
    return dict(Counter(re.sub(r"0x[0-9a-f]+", "0x...", m)[:300] for m in messages).most_common(limit))


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def _r(value: float) -> float | None:
    return round(value, 2) if math.isfinite(value) else None


def vars_json(args: argparse.Namespace) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
            if k not in ("func",) and isinstance(v, (str, int, float, bool, Path, type(None)))}


def print_summary(r: dict[str, Any]) -> None:
    if r.get("error"):
        print(f"bench soak: error: {r['error']}")
        return
    lat, mem, thr = r["latency"], r["memory"], r["threads"]
    print(f"model {r['model']} on {r['device']}: {r['requests']} requests in {r['wall_s']} s "
          f"({r['requests_per_s']}/s); outcomes {r['outcomes']}")
    print(f"  rss {mem['rss_warm_kb']} -> {mem['rss_end_kb']} kB after warm-up ({r['warmup_requests']} requests), "
          f"threads {thr['warm']} -> {thr['end']}")
    print(f"  p95 first {lat['window']} normal requests {lat['first_window_ms']['p95']} ms, "
          f"last {lat['last_window_ms']['p95']} ms")
    for name, t in r["verdict"]["targets"].items():
        print(f"  {name:20s} {t['value']!s:>10} (limit {t['limit']}): {'ok' if t['ok'] else 'FAILED'}")
    print(f"  verdict: {'PASS' if r['verdict']['ok'] else 'FAIL'}")
