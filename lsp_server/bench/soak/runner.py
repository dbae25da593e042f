"""Plays the soak's workload against one server process and measures it.

The runner is the client half: it sends what the workload does to the server
(open, change, close, requests), answers the server's ``workspace/applyEdit``
through the workload, cancels or supersedes requests, tracks every response,
and samples the server's memory, threads and latency as the run goes.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from typing import Any

from engine.bench.metrics import percentile
from lsp_server import methods
from lsp_server.bench.client import BenchClient, server_options, shutdown
from lsp_server.bench.latency import rounded
from lsp_server.bench.procstat import read_cpu_s, read_rss_kb, read_threads, thread_names
from lsp_server.bench.soak.report import Run, results, settings_json
from lsp_server.bench.soak.workload import (
    MAX_PENDING,
    MirrorDoc,
    Mode,
    Req,
    RequestKind,
    Workload,
    nonempty,
    pick_sources,
)

RESPONSE_TIMEOUT_S = 120.0
URI_ROOT = "file:///diffill-soak/"
REQUEST_CANCELLED, SERVER_CANCELLED = -32800, -32802


class Soak:
    """One run: a server process, a client, the workload and what was measured."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.c = BenchClient("diffill-soak")
        self.types = self.c.types
        self.workload = Workload(self.rng, {}, self)
        self.reqs: list[Req] = []
        self.pending: set[asyncio.Task] = set()
        self.samples: list[dict[str, Any]] = []
        self.pid = 0
        self._since_sample = 0
        self._register_handlers()

    def say(self, message: str) -> None:
        if not self.args.quiet:
            print(message, file=sys.stderr, flush=True)

    # -- server -> client ------------------------------------------------------
    def _register_handlers(self) -> None:
        types = self.types
        client = self.c.client

        @client.feature(types.WORKSPACE_APPLY_EDIT)
        def _apply(params: Any) -> Any:
            edit = params.edit
            groups = [(d.text_document.uri, d.text_document.version, d.edits) for d in edit.document_changes or []]
            groups += [(uri, None, edits) for uri, edits in (edit.changes or {}).items()]  # unversioned
            if self.workload.apply(groups):
                return types.ApplyWorkspaceEditResult(applied=True)
            return types.ApplyWorkspaceEditResult(applied=False, failure_reason="document version changed")

        @client.feature(methods.DRAFT)
        def _draft(params: Any) -> None:
            self.workload.totals.drafts += 1

    # -- client -> server: documents (the workload's Editor) ------------------------
    def opened(self, doc: MirrorDoc) -> None:
        self.c.client.text_document_did_open(self.types.DidOpenTextDocumentParams(
            text_document=self.types.TextDocumentItem(uri=doc.uri, language_id="python", version=doc.version,
                                                      text=doc.text)))

    def closed(self, uri: str) -> None:
        self.c.client.text_document_did_close(self.types.DidCloseTextDocumentParams(
            text_document=self.types.TextDocumentIdentifier(uri=uri)))

    def changed(self, doc: MirrorDoc, start: tuple[int, int], end: tuple[int, int], text: str) -> None:
        """One incremental didChange; requests still running on ``doc`` no longer time a clean request."""
        types = self.types
        self.c.client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=doc.uri, version=doc.version),
            content_changes=[types.TextDocumentContentChangePartial(
                range=types.Range(start=types.Position(*start), end=types.Position(*end)), text=text)]))
        for req in self.reqs[-MAX_PENDING * 4:]:
            if req.uri == doc.uri and req.t1 is None:
                req.edited = True

    # -- requests ------------------------------------------------------------------
    def _request(self, index: int, doc: MirrorDoc, at: int, mode: Mode) -> Req:
        kind = self.workload.kind()
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

    def _params(self, kind: RequestKind, doc: MirrorDoc, at: int) -> tuple[str, Any]:
        types = self.types
        line, char = doc.position(at)
        ident = types.TextDocumentIdentifier(uri=doc.uri)
        pos = types.Position(line, char)
        if kind == "inline":
            trigger = (types.InlineCompletionTriggerKind.Invoked if self.workload.invoked()
                       else types.InlineCompletionTriggerKind.Automatic)
            return types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionParams(
                text_document=ident, position=pos, context=types.InlineCompletionContext(trigger_kind=trigger))
        if kind == "completion":
            return types.TEXT_DOCUMENT_COMPLETION, types.CompletionParams(
                text_document=ident, position=pos,
                context=types.CompletionContext(trigger_kind=types.CompletionTriggerKind.Invoked))
        return types.WORKSPACE_EXECUTE_COMMAND, types.ExecuteCommandParams(
            command=methods.FILL_COMMAND, arguments=[self.workload.fill_target(doc, at)])

    async def _track(self, req: Req, future: asyncio.Future) -> None:
        try:
            result = await asyncio.wait_for(future, RESPONSE_TIMEOUT_S)
        except TimeoutError:
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
            req.nonempty = nonempty(result)

    async def _cancel_later(self, req: Req) -> None:
        await asyncio.sleep(self.workload.delay())
        self.c.client.protocol.notify(self.types.CANCEL_REQUEST,
                                      self.types.CancelParams(id=req.msg_id))

    async def _supersede_later(self, doc: MirrorDoc, at: int) -> None:
        await asyncio.sleep(self.workload.delay())
        self.workload.keystroke(doc, at)

    async def _bound_pending(self) -> None:
        while len(self.pending) > MAX_PENDING:
            await asyncio.wait(self.pending, return_when=asyncio.FIRST_COMPLETED)

    async def _drain(self) -> None:
        if self.pending:
            await asyncio.wait(self.pending)

    # -- one step ---------------------------------------------------------------------
    async def _step(self, index: int) -> None:
        w = self.workload
        w.churn()
        doc = w.pick_document()
        at = w.edit(doc)
        mode = w.mode(self.args.cancel_fraction, self.args.supersede_fraction)
        req = self._request(index, doc, at, mode)
        if mode == "normal":
            assert req.task is not None
            await req.task
        elif mode == "cancel":
            await self._cancel_later(req)
        else:
            await self._supersede_later(doc, at)
        await self._bound_pending()

    # -- measurements ---------------------------------------------------------------
    async def _sample(self, index: int, t_start: float) -> None:
        """RSS, threads, load and the latency of the normal requests since the last sample."""
        stats = await self.c.stats(timings=True, reset=True)
        self._add_server_counts(stats)
        recent = [r.ms for r in self.reqs[self._since_sample:] if r.clean]
        self._since_sample = len(self.reqs)
        engine = [t["engineMs"] for t in stats.get("timings", []) if t["outcome"] == "completed"]
        server = [t["serverMs"] for t in stats.get("timings", []) if t["outcome"] == "completed"]
        self.samples.append({
            "request": index, "t_s": round(time.perf_counter() - t_start, 2),
            "rss_kb": read_rss_kb(self.pid), "threads": read_threads(self.pid),
            "cpu_s": round(read_cpu_s(self.pid), 2), "load1": round(os.getloadavg()[0], 2),
            "pending": len(self.pending),
            "e2e_p50_ms": rounded(percentile(recent, 50)),
            "e2e_p95_ms": rounded(percentile(recent, 95)),
            "engine_p95_ms": rounded(percentile(engine, 95)),
            "server_p95_ms": rounded(percentile(server, 95)),
        })

    def _add_server_counts(self, stats: dict[str, Any]) -> None:
        for key in ("requests", "engineStarted", "completed", "cancelled", "engineCancelled", "cacheHits", "errors"):
            self.workload.totals.server[key] += int(stats.get(key, 0))

    def _snapshot(self) -> dict[str, Any]:
        return {"rss_kb": read_rss_kb(self.pid), "threads": read_threads(self.pid),
                "thread_names": thread_names(self.pid), "load1": round(os.getloadavg()[0], 2)}

    async def _load_model(self) -> str | None:
        """One request outside the count, so the load is not in any latency; an
        error message if the model did not load."""
        doc = self.workload.first_document()
        req = self._request(-1, doc, self.workload.site(doc), "normal")
        assert req.task is not None
        await req.task
        self.reqs.clear()
        stats = await self.c.stats(reset=True)
        if not stats.get("engineLoaded"):
            return "model did not load: " + "; ".join(self.c.messages or self.c.stderr_tail[-3:])
        return None

    # -- the whole run --------------------------------------------------------------
    async def run(self) -> dict[str, Any]:
        a = self.args
        report: dict[str, Any] = {"benchmark": "soak", "error": None, "settings": settings_json(a)}
        sources = pick_sources(2 * a.documents, self.rng)
        self.workload.pool = {f"{URI_ROOT}{i:03d}-{p.parent.name}-{p.name}": p for i, p in enumerate(sources)}
        self.pid = await self.c.start()
        options = server_options(a, debounceMs=0, maxNewTokens=a.max_new_tokens)
        await self.c.initialize(options, self._capabilities())
        for uri in list(self.workload.pool)[: a.documents]:
            self.workload.open(uri)
        t_load = time.perf_counter()
        report["error"] = await self._load_model()
        report["model_load_s"] = round(time.perf_counter() - t_load, 2)
        if report["error"] is None:
            report |= await self._play()
        report["server_stderr_tail"] = self.c.stderr_tail[-5:]
        await shutdown(self.c.client)
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
        return results(Run(args=a, client=self.c, reqs=self.reqs, samples=self.samples, totals=self.workload.totals,
                           open_documents=len(self.workload.docs), warm_n=warm_n, start=start, warm=warm, end=end,
                           stats=stats, wall=wall))

    def _capabilities(self) -> Any:
        types = self.types
        return types.ClientCapabilities(
            window=types.WindowClientCapabilities(work_done_progress=True),
            workspace=types.WorkspaceClientCapabilities(
                apply_edit=True, workspace_edit=types.WorkspaceEditClientCapabilities(document_changes=True)))
