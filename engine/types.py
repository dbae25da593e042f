"""Request, draft and result types shared by every backend.

They are plain dataclasses so that callers (the language server, the CLI, the
benchmarks) never need to import torch to build a request or read a result.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Sampler = Literal["threshold", "remask"]
#: the most middles one request may ask for (``InfillRequest.alternatives``)
MAX_ALTERNATIVES = 8


@dataclass(frozen=True)
class ContextPiece:
    """A snippet of another file that may help fill the middle (a definition, a
    recently seen chunk).  ``path`` is relative to the workspace where possible:
    the model sees it in a header.  Each backend lays pieces out in its model's
    own prompt format (``engine.context_format``)."""

    path: str
    text: str


@dataclass(frozen=True)
class InfillRequest:
    """What to fill: the text before and after the cursor, and the budget.

    ``max_new_tokens`` is the size of the canvas the model may write into; the
    engine decides the actual middle length itself (it never needs the true
    length).  ``steps`` caps the number of denoising forward passes; ``None``
    lets the backend pick one from ``max_new_tokens``.  ``refresh`` is the
    number of steps between full forward passes where the backend reuses the
    context's keys and values between steps (1: every step is a full forward,
    exact; ``None``: the backend's default).  ``context`` holds
    snippets of other files, most relevant last, and ``path`` names the
    cursor's file; a backend that cannot use them ignores them.
    ``reuse_previous`` lets the backend start from what an earlier request with
    the same flag computed over a window that is mostly the same text (the
    keystroke before: ``engine.backends.keystroke_reuse``); off, every request is
    computed from scratch (benchmarks of independent cases).
    ``single_line`` says the caller keeps only the middle's first line (after
    any leading line breaks): a backend may stop there.  A remote server is
    sent the stop rule and the stream is closed once that line is complete
    (``engine.backends.remote.backend``); the in-process models fill their
    canvas either way.
    ``alternatives`` asks for up to that many distinct middles in all, the
    primary included (``InfillResult.alternatives`` holds the others): the
    masked backend branches its canvas where the model's second choice was
    likeliest (``engine.branching``), a remote server asks for ``n`` where it
    can; other backends give the primary alone.
    """

    prefix: str
    suffix: str = ""
    language: str | None = None
    max_new_tokens: int = 32
    steps: int | None = None
    seed: int | None = 0
    sampler: Sampler = "threshold"
    threshold: float = 0.9
    context_tokens: int | None = None
    fixed_length: bool = False
    context: tuple[ContextPiece, ...] = ()
    path: str | None = None
    refresh: int | None = None
    reuse_previous: bool = False
    single_line: bool = False
    alternatives: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.prefix, str) or not isinstance(self.suffix, str):
            raise TypeError("prefix and suffix must be strings")
        if not 1 <= int(self.max_new_tokens) <= 4096:
            raise ValueError(f"max_new_tokens must be in 1..4096, got {self.max_new_tokens}")
        if self.steps is not None and not 1 <= int(self.steps) <= 4096:
            raise ValueError(f"steps must be in 1..4096, got {self.steps}")
        if self.sampler not in ("threshold", "remask"):
            raise ValueError(f"sampler must be 'threshold' or 'remask', got {self.sampler!r}")
        if not 0.0 < float(self.threshold) <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        if self.refresh is not None and not 1 <= int(self.refresh) <= 4096:
            raise ValueError(f"refresh must be in 1..4096, got {self.refresh}")
        if self.context_tokens is not None and int(self.context_tokens) < 16:
            raise ValueError(f"context_tokens must be >= 16, got {self.context_tokens}")
        if not 1 <= int(self.alternatives) <= MAX_ALTERNATIVES:
            raise ValueError(f"alternatives must be in 1..{MAX_ALTERNATIVES}, got {self.alternatives}")


@dataclass(frozen=True)
class Draft:
    """One denoising step's view of the middle.

    ``text`` is the decoded middle so far (still-masked positions are left out),
    ``confidence`` has one probability per committed middle token, and the last
    draft of a stream has ``done=True`` and equals the final result.
    """

    step: int
    steps: int
    text: str
    confidence: list[float] = field(default_factory=list)
    done: bool = False


@dataclass(frozen=True)
class Alternative:
    """Another middle for the same request (``InfillRequest.alternatives``), with one
    probability per token and where each token ends in ``middle`` (characters)."""

    middle: str
    confidence: list[float] = field(default_factory=list)
    token_ends: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class InfillResult:
    """The final middle and what it cost.

    ``forwards`` counts the model's forward passes in this process (0 for a
    remote server: its passes are its own); ``pieces`` counts the streamed
    pieces a remote server sent (None in-process).  ``confidence`` has one
    probability per token of ``middle`` and ``token_ends`` where each of those
    tokens ends in it (characters; empty where the backend cannot tell), so a
    caller that shows only part of the middle can tell how sure the model was
    of that part.  ``alternatives``: the other middles asked for, best first,
    none equal to ``middle`` or to each other."""

    middle: str
    forwards: int
    tokens: int
    timings: dict[str, float] = field(default_factory=dict)
    confidence: list[float] = field(default_factory=list)
    pieces: int | None = None
    token_ends: list[int] = field(default_factory=list)
    alternatives: list[Alternative] = field(default_factory=list)

    @property
    def ms(self) -> float:
        return self.timings.get("total_ms", 0.0)
