"""One benchmark run of the engine on one case: request building, token counting, timing.

Shared by ``bench quality`` and ``bench speed`` so that both build requests the
same way.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from engine.bench.datasets import InfillCase
from engine.types import InfillRequest, InfillResult

#: default canvas size per case kind when ``--max-new-tokens`` is not given
DEFAULT_MAX_NEW_TOKENS = {"single": 32, "multi": 128, "random": 64}
#: the engine's canvas limit (see ``InfillRequest``)
MAX_CANVAS = 4096


@dataclass(frozen=True)
class RunSettings:
    """Sampler settings shared by every case of a benchmark run."""

    max_new_tokens: int | None = None
    steps: int | None = None
    sampler: str = "threshold"
    threshold: float = 0.9
    seed: int = 0
    refresh: int | None = None
    #: middles asked per case, the primary included (InfillRequest.alternatives)
    alternatives: int = 1

    def budget(self, kind: str) -> int:
        """Canvas size for a case of ``kind``."""
        return self.max_new_tokens or DEFAULT_MAX_NEW_TOKENS.get(kind, 64)


@dataclass(frozen=True)
class CaseRun:
    """What one engine call produced and cost."""

    middle: str
    forwards: int
    tokens: int
    ms: float
    max_new_tokens: int
    #: the model's probability of each token of ``middle``, and where each token ends in it
    confidence: list[float] = field(default_factory=list)
    token_ends: list[int] = field(default_factory=list)
    #: the other middles, best first (``RunSettings.alternatives`` > 1)
    alternatives: list[str] = field(default_factory=list)


def request_for(case: InfillCase, settings: RunSettings, *, oracle_tokens: int | None = None,
                one_per_step: bool = False) -> InfillRequest:
    """The request for ``case``: the normal unknown-length run, or with
    ``oracle_tokens`` a fixed-length canvas of exactly the true middle's size, or
    with ``one_per_step`` the one-token-per-forward reference run."""
    budget = settings.budget(case.kind)
    fixed = oracle_tokens is not None
    if oracle_tokens is not None:
        budget = min(max(1, oracle_tokens), MAX_CANVAS)
    sampler, steps = settings.sampler, settings.steps
    if one_per_step:
        sampler, steps = "remask", budget
    elif steps is not None:
        steps = min(steps, MAX_CANVAS)
    return InfillRequest(
        prefix=case.prefix, suffix=case.suffix, language="python",
        max_new_tokens=budget, steps=steps, seed=settings.seed,
        sampler=sampler, threshold=settings.threshold,  # type: ignore[arg-type]
        fixed_length=fixed, refresh=settings.refresh,
        alternatives=1 if fixed or one_per_step else settings.alternatives,
    )


def run_case(engine: Any, request: InfillRequest) -> CaseRun:
    """Run one request; the latency is the engine's ``total_ms`` when it reports
    one, else the wall-clock time of the call."""
    start = time.perf_counter()
    result: InfillResult = engine.infill(request)
    wall_ms = (time.perf_counter() - start) * 1000.0
    return CaseRun(
        middle=result.middle,
        forwards=int(result.forwards),
        tokens=int(result.tokens),
        ms=float(result.timings.get("total_ms") or wall_ms),
        max_new_tokens=request.max_new_tokens,
        confidence=[round(float(c), 4) for c in result.confidence],
        token_ends=list(result.token_ends),
        alternatives=[a.middle for a in result.alternatives],
    )


def token_counter(engine: Any):
    """A function ``text -> number of tokens`` for the engine's tokenizer, or None
    when the backend exposes no tokenizer (then oracle-length runs are skipped)."""
    backend = getattr(engine, "backend", None)
    count = getattr(backend, "count_tokens", None)
    if callable(count):
        return lambda text: int(count(text))
    tokenizer = getattr(backend, "tokenizer", None)
    if tokenizer is None:
        return None

    def count_with_tokenizer(text: str) -> int:
        try:
            ids = tokenizer.encode(text, add_special_tokens=False)
        except TypeError:  # a raw `tokenizers.Tokenizer`
            ids = tokenizer.encode(text)
        return len(getattr(ids, "ids", ids))

    return count_with_tokenizer
