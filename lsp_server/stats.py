"""Counters and recent per-request timings, served by ``diffill/stats``.

They make the cancellation and caching behaviour observable from a client
(tests, the ``bench lsp`` benchmark) without reading logs.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from lsp_server.hole import RequestKind

RECENT = 2048


@dataclass
class Timing:
    """Where one request's time went (milliseconds)."""

    kind: RequestKind
    uri: str
    total_ms: float
    engine_ms: float = 0.0
    queue_ms: float = 0.0
    debounce_ms: float = 0.0
    cached: bool = False
    outcome: str = "completed"
    #: the model that answered (its path or served name; "" when no engine ran)
    model: str = ""

    def to_json(self) -> dict[str, Any]:
        server_ms = max(self.total_ms - self.engine_ms - self.debounce_ms - self.queue_ms, 0.0)
        return {
            "kind": self.kind,
            "uri": self.uri,
            "totalMs": round(self.total_ms, 3),
            "engineMs": round(self.engine_ms, 3),
            "queueMs": round(self.queue_ms, 3),
            "debounceMs": round(self.debounce_ms, 3),
            "serverMs": round(server_ms, 3),
            "cached": self.cached,
            "outcome": self.outcome,
            "model": self.model,
        }


@dataclass
class Stats:
    """Monotonic counters since the server started (or since the last reset)."""

    requests: int = 0
    engine_started: int = 0
    completed: int = 0
    cancelled: int = 0
    engine_cancelled: int = 0
    cache_hits: int = 0
    #: answered with the rest of the last suggestion the user was typing (lsp_server.type_through)
    typed_through: int = 0
    #: automatic suggestions held back for a confidence under ``minConfidence``
    gated: int = 0
    #: suggestions the editor reported accepted (the items' ``diffill.accepted`` command)
    accepted: int = 0
    errors: int = 0
    #: fill edits sent with workspace/applyEdit, by the editor's answer (a late
    #: answer moves one from ``unanswered``, so the record agrees with the document)
    edits_applied: int = 0
    edits_refused: int = 0
    edits_unanswered: int = 0
    recent: deque[Timing] = field(default_factory=lambda: deque(maxlen=RECENT))

    def record(self, timing: Timing) -> None:
        self.recent.append(timing)

    def late_answer(self, applied: bool) -> None:
        """An applyEdit counted as unanswered was answered after all."""
        self.edits_unanswered = max(self.edits_unanswered - 1, 0)  # (0 after a reset)
        if applied:
            self.edits_applied += 1
        else:
            self.edits_refused += 1

    def to_json(self, timings: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "requests": self.requests,
            "engineStarted": self.engine_started,
            "completed": self.completed,
            "cancelled": self.cancelled,
            "engineCancelled": self.engine_cancelled,
            "cacheHits": self.cache_hits,
            "typedThrough": self.typed_through,
            "gated": self.gated,
            "accepted": self.accepted,
            "errors": self.errors,
            "last": self.recent[-1].to_json() if self.recent else None,
            "fillEdits": {"applied": self.edits_applied, "refused": self.edits_refused,
                          "unanswered": self.edits_unanswered},
        }
        if timings:
            out["timings"] = [t.to_json() for t in self.recent]
        return out

    def reset(self) -> None:
        self.requests = self.engine_started = self.completed = 0
        self.cancelled = self.engine_cancelled = self.cache_hits = self.typed_through = self.errors = 0
        self.gated = self.accepted = 0
        self.edits_applied = self.edits_refused = self.edits_unanswered = 0
        self.recent.clear()
