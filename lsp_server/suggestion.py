"""A suggestion as shown: the post-processed text and how sure the model was of each part.

Why: the model says, per token, how probable it was when it committed it
(``InfillResult.confidence``).  Post-processing keeps a stretch of the raw
middle (a line of it, the part before the suffix repeats, ...), so the
suggestion's confidence is that of the tokens it shows, not of the whole
canvas.  One number decides whether an automatic suggestion is worth showing
(``minConfidence``) and is what editors display; the per-token spans let an
editor shade the ghost text by confidence.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

#: how one number is made from the shown tokens' probabilities: the geometric mean (the
#: probability of the whole text, per token) or the lowest (the weakest token).  Chosen by
#: measurement (docs/BENCHMARKS.md, issue 28)
MEASURE = "gmean"


@dataclass(frozen=True)
class Span:
    """Characters ``start:end`` of a suggestion's text came from a token of this probability."""

    start: int
    end: int
    probability: float


@dataclass(frozen=True)
class Suggestion:
    """What is inserted, the probability of each token it shows (empty: unknown, e.g. a
    remote server that reports none) and, where the engine said where its tokens end,
    which characters each came from (for shading)."""

    text: str
    probabilities: tuple[float, ...] = ()
    spans: tuple[Span, ...] = ()

    @property
    def confidence(self) -> float | None:
        """One number for the whole suggestion (``MEASURE``), or None when unknown."""
        return measure(self.probabilities)

    def rest(self, typed: int) -> Suggestion:
        """What is left once the user typed its first ``typed`` characters: the tokens the
        typing passed are no longer part of it."""
        if not self.spans:
            return Suggestion(self.text[typed:], self.probabilities)
        spans = tuple(Span(max(0, s.start - typed), s.end - typed, s.probability)
                      for s in self.spans if s.end > typed)
        return Suggestion(self.text[typed:], tuple(s.probability for s in spans), spans)

    def as_json(self) -> dict[str, object]:
        """For the editor: the confidence and the spans as ``[start, end, probability]``."""
        confidence = self.confidence
        return {"confidence": None if confidence is None else round(confidence, 4),
                "spans": [[s.start, s.end, round(s.probability, 4)] for s in self.spans]}


def measure(probabilities: Sequence[float], how: str = MEASURE) -> float | None:
    """The geometric mean (``gmean``) or the lowest (``min``) of ``probabilities``."""
    if not probabilities:
        return None
    if how == "min":
        return float(min(probabilities))
    if how == "gmean":
        return math.exp(sum(math.log(max(p, 1e-12)) for p in probabilities) / len(probabilities))
    raise ValueError(f"unknown confidence measure {how!r}: use gmean or min")


def shown(middle: str, text: str, confidence: Sequence[float], token_ends: Sequence[int]) -> Suggestion:
    """The suggestion ``text`` that post-processing kept of ``middle``, with the tokens it
    shows.  Post-processing keeps one stretch of the middle (leading line breaks dropped,
    the end cut): where ``text`` is not found in it, or the engine gave no token
    positions, every token counts and no spans are known."""
    if not text:
        return Suggestion("")
    at = middle.find(text) if token_ends and len(token_ends) == len(confidence) else -1
    if at < 0:
        return Suggestion(text, tuple(float(p) for p in confidence))
    stop = at + len(text)
    spans, begin = [], 0
    for end, p in zip(token_ends, confidence):
        if end > at and begin < stop:
            spans.append(Span(max(begin, at) - at, min(end, stop) - at, float(p)))
        begin = end
    return Suggestion(text, tuple(s.probability for s in spans), tuple(spans))
