"""The completion pipeline in-process: real collaborators, a fake engine and client.

No server process and no model: the pipeline is built from ``PipelineParts``
exactly as the server builds it, so these tests show what one request does
(window, cache, cancel-previous, debounce, drafts, post-processing, failures)
in milliseconds.
"""
from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from engine import Alternative, Cancelled, Draft, EngineError, InfillRequest, InfillResult
from lsp_server.config import Settings
from lsp_server.debounce import Debouncer
from lsp_server.documents import Document
from lsp_server.hole import Hole
from lsp_server.infill import InfillPipeline, PipelineParts
from lsp_server.inflight import Inflight
from lsp_server.limits import RateLimiter, ServerCancelled
from lsp_server.methods import DRAFT
from lsp_server.notices import Notices
from lsp_server.stats import Stats
from lsp_server.worker import EngineWorker

CURSOR = "<|cursor|>"


class FakeEngine:
    """Answers with a scripted middle (each character one token of probability
    ``confidence``, and any ``alternatives``); can wait until released, or fail."""

    def __init__(self, middle: str = "x", fail: Exception | None = None, confidence: float = 0.5,
                 alternatives: tuple[str, ...] = ()) -> None:
        self.middle = middle
        self.fail = fail
        self.confidence = confidence
        self.alternatives = alternatives
        self.device = "cpu"
        self.model_path = f"fake:{middle}"
        self.requests: list[InfillRequest] = []
        self.release = threading.Event()
        self.release.set()

    def infill(self, request: InfillRequest, token: Any) -> InfillResult:
        self.requests.append(request)
        if self.fail:
            raise self.fail
        while not self.release.wait(0.01):
            token.raise_if_cancelled()
        token.raise_if_cancelled()
        return self._result(request)

    def _result(self, request: InfillRequest) -> InfillResult:
        def per_char(text: str) -> dict[str, Any]:
            return {"confidence": [self.confidence] * len(text), "token_ends": list(range(1, len(text) + 1))}
        others = [Alternative(a, **per_char(a)) for a in self.alternatives[:request.alternatives - 1]]
        return InfillResult(self.middle, forwards=1, tokens=len(self.middle), alternatives=others,
                            **per_char(self.middle))

    def stream(self, request: InfillRequest, token: Any):
        self.requests.append(request)
        for step in range(1, 3):
            token.raise_if_cancelled()
            yield Draft(step=step, steps=2, text=self.middle[: step], confidence=[0.5] * step, done=step == 2)
        return self._result(request)


@dataclass
class FakeHost:
    engine: FakeEngine
    loads: list[Settings] = field(default_factory=list)
    ready: int = 0

    async def get(self, settings: Settings, use: str = "typing") -> FakeEngine:
        self.loads.append(settings)
        return self.engine

    def engine_for(self, use: str) -> FakeEngine:
        return self.engine

    def send_ready(self) -> None:
        self.ready += 1

    def fall_back_to_cpu(self, settings: Settings, use: str = "typing") -> None:
        raise AssertionError("not expected")


@dataclass
class FakeClient:
    sent: list[tuple[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    shown: list[str] = field(default_factory=list)

    def send_status(self, state: str, message: str, **extra: str) -> None:
        self.sent.append(("status", state))

    def log_message(self, message: str, kind: Any = None) -> None:
        self.sent.append(("log", message))

    def report_engine_error(self, text: str) -> None:
        self.errors.append(text)

    def notify(self, method: str, params: Any) -> None:
        self.sent.append((method, params))


def make(engine: FakeEngine | None = None, **settings: Any) -> tuple[InfillPipeline, FakeHost, FakeClient, Stats]:
    current = replace(Settings(), **{"debounce_ms": 0, **settings})
    client = FakeClient()
    host = FakeHost(engine or FakeEngine())
    stats = Stats()
    parts = PipelineParts(settings=lambda: current, stats=stats, inflight=Inflight(),
                          debouncer=Debouncer(current.debounce_ms, adaptive=False), engine_host=host,
                          worker=EngineWorker(), notices=Notices(lambda m, k=None: client.shown.append(m)),
                          rate_limiter=RateLimiter(current.max_requests_per_second), client=client)
    return InfillPipeline(parts), host, client, stats


def hole(marked: str, uri: str = "file:///w/a.py", language: str = "python") -> Hole:
    text = marked.replace(CURSOR, "")
    at = marked.index(CURSOR)
    line = marked[:at].count("\n")
    col = at - (marked[:at].rfind("\n") + 1)
    pos = {"line": line, "character": col}
    return Hole(Document(uri, text, 1, language), at, at, {"start": pos, "end": pos})


async def test_the_engine_sees_the_window_and_the_middle_is_post_processed():
    pipeline, host, _client, stats = make(FakeEngine("a, b)\nnext_line()"))
    out = await pipeline.complete(hole(f"value = compute({CURSOR})\n"), kind="inline", debounce=False, drafts=False)
    assert out is not None and out.text == "a, b" and not out.cached
    request = host.engine.requests[0]
    assert request.prefix == "value = compute(" and request.suffix == ")\n"
    assert request.max_new_tokens == Settings().max_new_tokens
    assert request.reuse_previous  # keystrokes may start from the last request's keys and values
    assert stats.completed == 1


async def test_the_same_context_comes_from_the_cache():
    pipeline, host, _client, stats = make(FakeEngine("1"))
    h = hole(f"x = {CURSOR}\nprint(x)\n")
    first = await pipeline.complete(h, kind="inline", debounce=False, drafts=False)
    second = await pipeline.complete(h, kind="inline", debounce=False, drafts=False)
    assert first is not None and second is not None
    assert second.cached and second.text == first.text == "1"
    assert len(host.engine.requests) == 1 and stats.cache_hits == 1


async def test_a_newer_request_for_the_document_cancels_the_older_one():
    engine = FakeEngine("1")
    engine.release.clear()  # the first request waits inside the engine
    pipeline, _host, _client, stats = make(engine)
    first = asyncio.ensure_future(pipeline.complete(hole(f"x = {CURSOR}\n"), kind="inline", debounce=False,
                                                    drafts=False))
    while not engine.requests:
        await asyncio.sleep(0.01)
    # the second request starts (and cancels the first) before the engine is released: released
    # first, the engine thread could finish the first request before the second began
    second = asyncio.ensure_future(pipeline.complete(hole(f"y = {CURSOR}\n"), kind="inline", debounce=False,
                                                     drafts=False))
    await asyncio.sleep(0)
    engine.release.set()
    assert await first is None
    second_outcome = await second
    assert second_outcome is not None and second_outcome.text == "1"
    assert stats.cancelled == 1 and stats.engine_cancelled == 1


async def test_debounce_lets_only_the_last_keystroke_reach_the_engine():
    pipeline, host, _client, _stats = make(FakeEngine("1"), debounce_ms=200)
    calls = [pipeline.complete(hole(f"x = {'1' * i}{CURSOR}\n"), kind="inline", debounce=True, drafts=False)
             for i in range(3)]
    results = await asyncio.gather(*calls)
    assert results[:2] == [None, None] and results[2] is not None
    assert len(host.engine.requests) == 1 and host.engine.requests[0].prefix == "x = 11"


async def test_disabled_languages_and_empty_context_never_reach_the_engine():
    pipeline, host, _client, stats = make(languages={"markdown": False})
    assert await pipeline.complete(hole(f"# {CURSOR}", language="markdown"), kind="inline", debounce=False,
                                   drafts=False) is None
    assert await pipeline.complete(hole(f"  {CURSOR}\n"), kind="inline", debounce=False, drafts=False) is None
    assert host.engine.requests == [] and [t.outcome for t in stats.recent] == ["disabled", "empty"]


async def test_drafts_stream_and_end_with_the_post_processed_text():
    pipeline, _host, client, _stats = make(FakeEngine("ab"))
    out = await pipeline.complete(hole(f"x = {CURSOR}\n"), kind="command", debounce=False, drafts=True)
    await asyncio.sleep(0.05)  # drafts hop from the engine thread to the loop
    drafts = [params for method, params in client.sent if method == DRAFT]
    assert out is not None and [d["final"] for d in drafts] == [False, False, True]
    assert drafts[-1]["text"] == out.text and drafts[0]["range"] == {"start": {"line": 0, "character": 4},
                                                                      "end": {"line": 0, "character": 4}}


async def test_an_engine_failure_is_reported_and_the_request_ends_quietly():
    pipeline, _host, client, stats = make(FakeEngine(fail=EngineError("boom")))
    assert await pipeline.complete(hole(f"x = {CURSOR}\n"), kind="inline", debounce=False, drafts=False) is None
    assert client.errors == ["boom"] and stats.errors == 1


async def test_a_cancelled_engine_run_is_counted_not_reported():
    pipeline, _host, client, stats = make(FakeEngine(fail=Cancelled("stop")))
    assert await pipeline.complete(hole(f"x = {CURSOR}\n"), kind="inline", debounce=False, drafts=False) is None
    assert client.errors == [] and stats.cancelled == 1


async def test_over_the_request_rate_is_a_server_cancellation_told_once():
    pipeline, _host, client, _stats = make(max_requests_per_second=1)
    assert await pipeline.complete(hole(f"x = {CURSOR}\n"), kind="inline", debounce=False, drafts=False)
    for _ in range(2):
        with pytest.raises(ServerCancelled):
            await pipeline.complete(hole(f"y = {CURSOR}\n"), kind="inline", debounce=False, drafts=False)
    assert len(client.shown) == 1 and "maxRequestsPerSecond" in client.shown[0]


async def test_settings_changed_while_debouncing_are_the_ones_the_engine_gets():
    """Issue 20: the request asked the engine host for the settings it arrived with."""
    pipeline, host, _client, _stats = make(FakeEngine("1"), debounce_ms=300, max_new_tokens=4)
    current = pipeline.parts.settings()
    pipeline.parts.settings = lambda: current
    task = asyncio.ensure_future(pipeline.complete(hole(f"x = {CURSOR}\n"), kind="inline", debounce=True,
                                                   drafts=False))
    await asyncio.sleep(0)
    current = replace(current, threads=2, max_new_tokens=7)  # a setting change arrives meanwhile
    assert await task is not None
    assert [s.threads for s in host.loads] == [2]
    assert host.engine.requests[0].max_new_tokens == 7


async def test_typing_the_suggestion_is_answered_with_its_rest_without_the_engine():
    pipeline, host, _client, stats = make(FakeEngine("urn 3.14 * r * r"))
    first = await pipeline.complete(hole(f"def area(r):\n    ret{CURSOR}\n"), kind="inline", debounce=False,
                                    drafts=False)
    assert first is not None and first.text == "urn 3.14 * r * r"
    typed = await pipeline.complete(hole(f"def area(r):\n    retu{CURSOR}\n"), kind="inline", debounce=False,
                                    drafts=False)
    assert typed is not None and typed.text == "rn 3.14 * r * r" and typed.cached
    more = await pipeline.complete(hole(f"def area(r):\n    return 3{CURSOR}\n"), kind="inline", debounce=False,
                                   drafts=False)
    assert more is not None and more.text == ".14 * r * r"
    assert len(host.engine.requests) == 1 and stats.typed_through == 2
    # typing something else asks the engine again; fills never type through
    other = await pipeline.complete(hole(f"def area(r):\n    return 4{CURSOR}\n"), kind="inline", debounce=False,
                                    drafts=False)
    assert other is not None and len(host.engine.requests) == 2
    await pipeline.complete(hole(f"def area(r):\n    retu{CURSOR}\n"), kind="command", debounce=False, drafts=False)
    assert len(host.engine.requests) == 3


# -- confidence gate and alternatives (issue 28) ---------------------------------------

async def test_an_automatic_suggestion_under_min_confidence_is_held_back():
    pipeline, _host, client, stats = make(FakeEngine("value", confidence=0.3), min_confidence=0.5)
    h = hole(f"x = {CURSOR}\n")
    gated = await pipeline.complete(h, kind="inline", debounce=False, drafts=True, gate=True)
    assert gated is not None and gated.gated and gated.text == "" and gated.suggestions() == ()
    assert stats.gated == 1
    assert [p["text"] for m, p in client.sent if m == DRAFT and p["final"]] == [""]  # nothing shown
    asked = await pipeline.complete(h, kind="inline", debounce=False, drafts=False)  # invoked: always answers
    assert asked is not None and not asked.gated and asked.text == "value"
    assert asked.suggestion.confidence == pytest.approx(0.3)


async def test_a_sure_suggestion_passes_the_gate_and_zero_turns_it_off():
    pipeline, _host, _client, _stats = make(FakeEngine("value", confidence=0.8), min_confidence=0.5)
    sure = await pipeline.complete(hole(f"x = {CURSOR}\n"), kind="inline", debounce=False, drafts=False, gate=True)
    assert sure is not None and sure.text == "value" and not sure.gated
    pipeline, _host, _client, _stats = make(FakeEngine("value", confidence=0.01), min_confidence=0.0)
    off = await pipeline.complete(hole(f"x = {CURSOR}\n"), kind="inline", debounce=False, drafts=False, gate=True)
    assert off is not None and off.text == "value"


async def test_alternatives_are_post_processed_and_distinct_best_first():
    engine = FakeEngine("a, b)\nrest", alternatives=("a, b", "c)", "a, c\nmore"))
    pipeline, host, _client, _stats = make(engine)
    out = await pipeline.complete(hole(f"f({CURSOR})\n"), kind="inline", debounce=False, drafts=False,
                                  alternatives=4)
    assert out is not None and host.engine.requests[-1].alternatives == 4
    assert [s.text for s in out.suggestions()] == ["a, b", "c", "a, c"]  # "a, b" again is dropped


async def test_a_cached_answer_with_fewer_suggestions_than_asked_for_is_computed_again():
    engine = FakeEngine("1", alternatives=("2", "3"))
    pipeline, host, _client, stats = make(engine)
    h = hole(f"x = {CURSOR}\n")
    one = await pipeline.complete(h, kind="inline", debounce=False, drafts=False)
    three = await pipeline.complete(h, kind="inline", debounce=False, drafts=False, alternatives=3)
    again = await pipeline.complete(h, kind="inline", debounce=False, drafts=False, alternatives=2)
    assert one is not None and three is not None and again is not None
    assert [s.text for s in one.suggestions()] == ["1"]
    assert [s.text for s in three.suggestions()] == ["1", "2", "3"] and not three.cached
    assert [s.text for s in again.suggestions()] == ["1", "2"] and again.cached
    assert len(host.engine.requests) == 2 and stats.cache_hits == 1
