"""The completion pipeline, top to bottom, shared by every entry point:

  window -> language gate -> other files' snippets -> typing through the last suggestion -> cache
  -> cancel-previous + debounce -> engine
  (worker thread, optional live drafts) -> post-processing -> cache -> result

Entry points (inline completion, completion, the fill command) only turn
LSP params into a ``Hole`` and the ``Outcome`` into their LSP result.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from lsprotocol import types

from engine import Cancelled, Draft, Engine, InfillRequest, InfillResult, InputError, OutOfMemory
from engine.types import ContextPiece
from engine.window import char_budgets
from lsp_server.cache import LruCache
from lsp_server.config import Multiline, Settings, Use
from lsp_server.context.pieces import Packed
from lsp_server.debounce import Debouncer
from lsp_server.documents import Document, InfillContext, extract
from lsp_server.documents.context import scalar_text
from lsp_server.engine_host import EngineUnavailable, Superseded, one_line
from lsp_server.hole import Hole, RequestKind
from lsp_server.inflight import Inflight, RequestHandle
from lsp_server.limits import (
    RateLimiter,
    RequestFailed,
    ServerCancelled,
    document_too_large,
)
from lsp_server.methods import DRAFT
from lsp_server.notices import Notices
from lsp_server.postprocess import undecodable
from lsp_server.postprocess.context import FilterContext
from lsp_server.postprocess.line_mode import wants_multiline
from lsp_server.postprocess.pipeline import postprocess
from lsp_server.stats import Stats, Timing
from lsp_server.suggestion import Suggestion, shown
from lsp_server.type_through import TypeThrough
from lsp_server.worker import EngineRun, EngineWorker, run_infill

log = logging.getLogger(__name__)

#: the status turns "busy" only for a request still in the engine after this long: a
#: spinner that flickers on every keystroke says nothing, and two notifications per
#: keystroke cost a fast remote server's answer a measurable share of its latency
BUSY_AFTER_S = 0.1


@dataclass(frozen=True)
class Outcome:
    """A post-processed suggestion (text "" = nothing worth showing) and the other
    suggestions asked for (``alternatives`` > 1), best first, all distinct."""

    suggestion: Suggestion
    cached: bool
    request_id: str
    alternatives: tuple[Suggestion, ...] = ()
    #: an automatic suggestion held back because its confidence was under ``minConfidence``
    gated: bool = False

    @property
    def text(self) -> str:
        return self.suggestion.text

    def suggestions(self) -> tuple[Suggestion, ...]:
        """The suggestion and the alternatives, best first (none when there is nothing to show)."""
        return (self.suggestion, *self.alternatives) if self.suggestion.text else ()


@dataclass(frozen=True)
class Answer:
    """What the cache keeps: the suggestions of one request and how many were asked for."""

    suggestions: tuple[Suggestion, ...]
    asked: int


@dataclass(frozen=True)
class Plan:
    """One request under one set of settings: the window, line mode and cache key."""

    settings: Settings
    ctx: InfillContext
    mode: Multiline
    key: str
    context: Packed | None = None  # other files' snippets (lsp_server.context)
    use: Use = "typing"  # which model answers: the fill command's or the typing one


class EngineSource(Protocol):
    """Where the pipeline gets the engine (``EngineHost`` in the server)."""

    def engine_for(self, use: Use) -> Engine | None: ...

    async def get(self, settings: Settings, use: Use = "typing") -> Engine: ...

    def send_ready(self) -> None: ...

    def fall_back_to_cpu(self, settings: Settings, use: Use = "typing") -> Awaitable[Engine]: ...


class ClientChannel(Protocol):
    """What the pipeline tells the editor (``DiffillServer`` in the server)."""

    def send_status(self, state: str, message: str, **extra: str) -> None: ...

    def log_message(self, message: str, kind: types.MessageType = types.MessageType.Log) -> None: ...

    def report_engine_error(self, text: str) -> None: ...

    def notify(self, method: str, params: Any) -> None: ...


@dataclass
class PipelineParts:
    """The pipeline's collaborators, passed in so that it runs in-process with
    fakes in tests (``tests/test_pipeline.py``) exactly as it runs in the server."""

    settings: Callable[[], Settings]  # the settings current now
    stats: Stats
    inflight: Inflight
    debouncer: Debouncer
    engine_host: EngineSource
    worker: EngineWorker
    notices: Notices
    rate_limiter: RateLimiter
    client: ClientChannel
    #: snippets of other files for a cursor (``lsp_server.context``); None: none
    context: Callable[[Document, int], Packed] | None = None


class InfillPipeline:
    """Turns a hole into a post-processed middle, honouring cancellation."""

    def __init__(self, parts: PipelineParts) -> None:
        self.parts = parts
        self.cache: LruCache[Answer] = LruCache(parts.settings().cache_size)
        self.shown = TypeThrough()

    async def complete(
        self,
        hole: Hole,
        *,
        kind: RequestKind,
        debounce: bool,
        drafts: bool,
        multiline: Multiline | None = None,
        alternatives: int = 1,
        gate: bool = False,
    ) -> Outcome | None:
        """The middle for ``hole``, or None if cancelled, disabled or failed.

        ``alternatives`` > 1 asks for that many suggestions in all (an invoked
        completion); ``gate`` holds back a suggestion whose confidence is under
        ``minConfidence`` (automatic completions: ``Outcome.gated``, text "").

        Settings are read twice: on arrival (limits, cache) and again when the
        debounce is over, so a request uses the settings current when its engine
        work starts; one changed while it waited never brings the old ones back
        (issue 20: a stale request reloaded the old model and left it loaded).
        """
        parts = self.parts
        stats = parts.stats
        doc = hole.doc
        t0 = time.perf_counter()
        stats.requests += 1
        timing = Timing(kind=kind, uri=doc.uri, total_ms=0.0)
        request_id = uuid.uuid4().hex[:12]
        drafts_out = DraftSender(parts.client, hole, request_id) if drafts else None
        # fills do not cancel each other (several may run on one document, see
        # fill_command); completions keep cancel-previous per document and kind
        inflight_key: tuple = (doc.uri, kind, request_id) if kind == "command" else (doc.uri, kind)
        handle: RequestHandle | None = None
        use: Use = "fill" if kind == "command" else "typing"
        try:
            if self._refused(doc, kind, timing):
                return None
            plan = self._plan(hole, parts.settings(), multiline, timing, use)
            if plan is None:
                return None
            hit = ((self._typed_through(plan, doc, kind, timing, drafts_out, request_id) if alternatives == 1
                    else None)
                   or self._from_cache(plan, doc, kind, timing, drafts_out, request_id, alternatives))
            if hit is not None:
                return self._shown(plan, doc, kind, hit, gate, timing, drafts_out)
            handle = parts.inflight.begin(inflight_key)
            if drafts_out:
                drafts_out.handle = handle
            if not await self._debounce(handle, doc.uri, debounce, timing):
                return None
            settings = parts.settings()
            if settings is not plan.settings:  # changed while debouncing: plan again
                plan = self._plan(hole, settings, multiline, timing, use)
                if plan is None:
                    return None
                hit = self._from_cache(plan, doc, kind, timing, drafts_out, request_id, alternatives)
                if hit is not None:
                    return self._shown(plan, doc, kind, hit, gate, timing, drafts_out)
            while True:
                try:
                    run = await self._run_engine(plan, handle, drafts_out, timing, alternatives)
                    break
                except Superseded:  # the load it waited for was skipped: the settings changed again
                    plan = self._plan(hole, parts.settings(), multiline, timing, use)
                    if plan is None:
                        return None
            if run is None:
                return None
            suggestions = self._suggestions(plan, doc.language_id, run.result)
            self.cache.put(plan.key, Answer(suggestions, alternatives))
            first, *others = suggestions or (Suggestion(""),)
            outcome = Outcome(first, False, request_id, tuple(others))
            return self._shown(plan, doc, kind, outcome, gate, timing, drafts_out)
        finally:
            if handle is not None:
                parts.inflight.end(inflight_key, handle)
            timing.total_ms = (time.perf_counter() - t0) * 1000.0
            stats.record(timing)

    def _plan(self, hole: Hole, settings: Settings, multiline: Multiline | None, timing: Timing,
              use: Use = "typing") -> Plan | None:
        """What to ask the engine of ``use`` under ``settings`` (None: nothing to ask)."""
        doc = hole.doc
        if not settings.language_enabled(doc.language_id):
            timing.outcome = "disabled"
            return None
        prefix_chars, suffix_chars = char_budgets(settings.context_tokens)
        text, start, end = hole.program()
        ctx = extract(text, start, end, language=doc.language_id,
                      prefix_chars=prefix_chars, suffix_chars=suffix_chars)
        if not ctx.prefix.strip() and not ctx.suffix.strip():
            timing.outcome = "empty"  # nothing around the cursor to go on
            return None
        mode = multiline or settings.multiline
        context = self._context(hole, settings)
        key = _cache_key(ctx, settings.request_key(use), settings.engine_key(use), mode, context)
        return Plan(settings, ctx, mode, key, context, use)

    def _context(self, hole: Hole, settings: Settings) -> Packed | None:
        """Other files' snippets for this hole; a failure costs the context, not the completion."""
        if self.parts.context is None or not settings.context_enabled:
            return None
        try:
            return self.parts.context(hole.doc, hole.start)
        except Exception:  # an unreadable file or a bug in a source: complete without context
            log.exception("repository context failed")
            return None

    def _suggestions(self, plan: Plan, language: str | None, result: InfillResult) -> tuple[Suggestion, ...]:
        """The post-processed suggestions of ``result``, best first, without repeats or empties."""
        ctx = plan.ctx
        filters = FilterContext(ctx.prefix, ctx.suffix, plan.mode, language)
        out: list[Suggestion] = []
        for middle, confidence, ends in [(result.middle, result.confidence, result.token_ends),
                                         *((a.middle, a.confidence, a.token_ends) for a in result.alternatives)]:
            text = postprocess(middle, filters)
            if text and all(text != s.text for s in out):
                out.append(shown(middle, text, confidence, ends))
        return tuple(out)

    def _shown(self, plan: Plan, doc: Document, kind: RequestKind, outcome: Outcome, gate: bool,
               timing: Timing, drafts_out: DraftSender | None) -> Outcome:
        """The outcome as the editor gets it: held back when gated, remembered for typing
        through when shown, and the final draft sent."""
        confidence = outcome.suggestion.confidence
        floor = plan.settings.min_confidence
        if gate and outcome.text and floor > 0 and confidence is not None and confidence < floor:
            self.parts.stats.gated += 1
            timing.outcome = "gated"
            outcome = replace(outcome, suggestion=Suggestion(""), alternatives=(), gated=True)
        self._remember(plan, doc, kind, outcome.suggestion)
        if drafts_out:
            drafts_out.final(outcome.text)
        return outcome

    def _remember(self, plan: Plan, doc: Document, kind: RequestKind, suggestion: Suggestion) -> None:
        if kind != "command":
            self.shown.remember((doc.uri, kind), plan.ctx.prefix, plan.ctx.suffix, _shown_key(plan), suggestion)

    def _typed_through(self, plan: Plan, doc: Document, kind: RequestKind, timing: Timing,
                       drafts_out: DraftSender | None, request_id: str) -> Outcome | None:
        """The rest of the last suggestion when the user typed its beginning
        (``lsp_server.type_through``); fills are always computed afresh."""
        if kind == "command":
            return None
        rest = self.shown.rest((doc.uri, kind), plan.ctx.prefix, plan.ctx.suffix, _shown_key(plan))
        if rest is None:
            return None
        self.parts.stats.typed_through += 1
        return self._answer((rest,), doc, kind, timing, request_id)

    def _from_cache(self, plan: Plan, doc: Document, kind: RequestKind, timing: Timing,
                    drafts_out: DraftSender | None, request_id: str, alternatives: int) -> Outcome | None:
        cached = self.cache.get(plan.key)
        if cached is None or cached.asked < alternatives:  # fewer suggestions than asked for: compute
            return None
        self.parts.stats.cache_hits += 1
        return self._answer(cached.suggestions[:alternatives], doc, kind, timing, request_id)

    def _answer(self, suggestions: tuple[Suggestion, ...], doc: Document, kind: RequestKind, timing: Timing,
                request_id: str) -> Outcome:
        """An answer without the engine (cache or typing through)."""
        if kind != "command":  # still cancel-previous: an older request for this document is stale now
            self.parts.inflight.cancel_matching(lambda k: k == (doc.uri, kind))
        timing.cached = True
        first, *others = suggestions or (Suggestion(""),)
        return Outcome(first, True, request_id, tuple(others))

    async def _debounce(self, handle: RequestHandle, uri: str, debounce: bool, timing: Timing) -> bool:
        """Wait out the debounce; False (counted as cancelled) if superseded meanwhile."""
        parts = self.parts
        parts.debouncer.observe(uri)
        if not debounce:
            return True
        delay = parts.debouncer.delay_ms(uri)
        t = time.perf_counter()
        if delay > 0:
            try:
                await asyncio.wait_for(handle.event.wait(), delay / 1000.0)
            except TimeoutError:
                pass
            except asyncio.CancelledError:  # $/cancelRequest while debouncing
                parts.stats.cancelled += 1
                timing.outcome = "cancelled"
                raise
        timing.debounce_ms = (time.perf_counter() - t) * 1000.0
        if handle.cancelled:
            parts.stats.cancelled += 1
            timing.outcome = "cancelled"
            return False
        return True

    def _refused(self, doc: Document, kind: RequestKind, timing: Timing) -> bool:
        """Whether the request is over the rate or document-size limits.

        Over the rate: raises LSP ``ServerCancelled`` (clients drop it quietly,
        as a cancellation).  Too large: the fill command (asked for explicitly)
        gets ``RequestFailed`` with the reason; automatic completions are refused
        quietly (True) and the user is told once per document.
        """
        parts = self.parts
        settings = parts.settings()
        if not parts.rate_limiter.allow():
            timing.outcome = "rate-limited"
            message = (f"diffill: over the request limit ({settings.max_requests_per_second}/s, "
                       "setting maxRequestsPerSecond); request dropped")
            parts.notices.show_once(("rate",), message, types.MessageType.Warning)
            raise ServerCancelled(message)
        too_large = document_too_large(doc, settings.max_document_bytes)
        if too_large is None:
            return False
        timing.outcome = "too-large"
        if kind == "command":
            raise RequestFailed(too_large)
        parts.notices.show_once(("too-large", doc.uri), too_large, types.MessageType.Warning)
        return True

    async def _run_engine(
        self,
        plan: Plan,
        handle: RequestHandle,
        drafts_out: DraftSender | None,
        timing: Timing,
        alternatives: int = 1,
    ) -> EngineRun | None:
        """Run the engine for ``plan``: its settings are the current ones (see ``complete``)."""
        parts = self.parts
        settings = plan.settings
        ctx = plan.ctx
        stats = parts.stats
        engine_started = False
        try:
            engine = await parts.engine_host.get(settings, plan.use)
            timing.model = str(engine.model_path)
            request = InfillRequest(
                prefix=ctx.prefix,
                suffix=ctx.suffix,
                language=ctx.language,
                max_new_tokens=settings.max_new_tokens,
                steps=settings.steps,
                context_tokens=settings.context_tokens,
                context=_pieces(plan.context),
                path=plan.context.path if plan.context else None,
                # keystrokes: start from what the last request computed over (mostly) the same window
                reuse_previous=True,
                alternatives=alternatives,
                # one line will be shown: a remote server stops there (the local engine fills its canvas)
                single_line=not wants_multiline(FilterContext(ctx.prefix, ctx.suffix, plan.mode, ctx.language)),
            )
            engine_started = True
            stats.engine_started += 1
            busy = asyncio.get_running_loop().call_later(BUSY_AFTER_S, parts.client.send_status, "busy", "filling")
            try:
                run = await parts.worker.call(
                    run_infill, engine, request, handle.token,
                    drafts_out.from_thread if drafts_out else None, time.perf_counter(),
                )
            finally:
                busy.cancel()
            parts.engine_host.send_ready()
            parts.notices.clear("engine", "rate")
            stats.completed += 1
            timing.engine_ms = run.engine_ms
            timing.queue_ms = run.queue_ms
            return run
        except Superseded:
            raise
        except Cancelled:
            stats.cancelled += 1
            if engine_started:
                stats.engine_cancelled += 1
                parts.engine_host.send_ready()
            timing.outcome = "cancelled"
            return None
        except asyncio.CancelledError:  # $/cancelRequest: stop the engine too
            handle.cancel()
            stats.cancelled += 1
            if engine_started:
                stats.engine_cancelled += 1
                parts.engine_host.send_ready()
            timing.outcome = "cancelled"
            raise
        except Exception as exc:  # noqa: BLE001 - EngineError, bugs, ...: report, stay alive
            stats.errors += 1
            timing.outcome = "error"
            self._report_failure(exc, plan.use)
            return None

    def _report_failure(self, exc: Exception, use: Use = "typing") -> None:
        """Tell the user about a failed request, as much as it deserves."""
        parts = self.parts
        if isinstance(exc, EngineUnavailable):
            return  # the failed load was reported when it happened
        if isinstance(exc, InputError):  # this request only: not worth a popup
            parts.client.log_message(f"diffill: request skipped: {exc}")
        elif isinstance(exc, OutOfMemory):
            self._out_of_memory(exc, use)
        else:
            log.exception("engine call failed")
            parts.client.report_engine_error(one_line(exc))

    def _out_of_memory(self, exc: OutOfMemory, use: Use = "typing") -> None:
        """Out of GPU memory: move (that use's model) to the CPU if allowed, else report (once)."""
        parts = self.parts
        engine = parts.engine_host.engine_for(use)
        on_gpu = engine is not None and engine.device.startswith("cuda")
        if on_gpu and parts.settings().fallback_to_cpu:
            log.error("%s; falling back to the CPU", exc)
            parts.notices.show_once(("oom-fallback",), f"diffill: {exc}; running on the CPU from now on "
                                     "(setting fallbackToCpu; change the model settings to try the GPU again)",
                                     types.MessageType.Warning)
            parts.engine_host.fall_back_to_cpu(parts.settings(), use)
            return
        parts.client.report_engine_error(str(exc))


class DraftSender:
    """Sends ``diffill/draft`` notifications; engine-thread drafts hop to the loop."""

    def __init__(self, client: ClientChannel, hole: Hole, request_id: str) -> None:
        self.client = client
        self.hole = hole
        self.request_id = request_id
        self.handle: RequestHandle | None = None
        self.loop = asyncio.get_running_loop()
        self.last_steps = 0
        #: looked up once, not per draft: the document does not change under a request
        self.source_has_replacement = undecodable.REPLACEMENT in hole.doc.text

    def from_thread(self, draft: Draft) -> None:
        """A live draft, cut before any U+FFFD as the final text is
        (``lsp_server.postprocess.undecodable``)."""
        if self.handle is not None and self.handle.cancelled:
            return
        self.last_steps = draft.steps
        try:
            text = undecodable.cut(draft.text, self.source_has_replacement)
            self.loop.call_soon_threadsafe(self._send, draft.step, draft.steps, text,
                                           list(draft.confidence), False)
        except RuntimeError:  # the loop is closed: the server is exiting
            pass

    def final(self, text: str) -> None:
        """The post-processed result (what is inserted); step == steps."""
        self._send(self.last_steps, self.last_steps, text, [], True)

    def _send(self, step: int, steps: int, text: str, confidence: list[float], final: bool) -> None:
        self.client.notify(
            DRAFT,
            {
                "uri": self.hole.doc.uri,
                "version": self.hole.doc.version,
                "requestId": self.request_id,
                "range": self.hole.range,
                "step": step,
                "steps": steps,
                "text": text,
                "confidence": [round(c, 4) for c in confidence],
                "final": final,
            },
        )


def _pieces(context: Packed | None) -> tuple[ContextPiece, ...]:
    """The packed pieces as the engine takes them; lone surrogates (which a client may send in
    any open document) become U+FFFD as in the cursor's own text, since tokenizers reject them."""
    return tuple(ContextPiece(scalar_text(p.path), scalar_text(p.text)) for p in context.pieces) if context else ()


def _shown_key(plan: Plan) -> tuple:
    """What must not change for a suggestion to be typed through: the settings
    that change the text and the line mode.  Other files' snippets may change
    as the user types (they follow the identifiers near the cursor): the
    suggestion being followed stays."""
    return (plan.ctx.language, plan.settings.request_key(), plan.settings.engine_key(), plan.mode)


def _cache_key(ctx: InfillContext, request_key: tuple, engine_key: tuple, mode: Multiline,
               context: Packed | None = None) -> str:
    """A short digest: the windowed text (and other files' snippets) can be tens of kilobytes."""
    h = hashlib.blake2b(digest_size=16)
    for part in (ctx.prefix, "\x00", ctx.suffix, "\x00", repr((ctx.language, request_key, engine_key, mode))):
        h.update(part.encode("utf-8", "surrogatepass"))
    if context is not None:
        h.update(repr(context.path).encode("utf-8", "surrogatepass"))
        for piece in context.pieces:
            h.update(f"\x00{piece.path}\x00{piece.text}".encode("utf-8", "surrogatepass"))
    return h.hexdigest()
