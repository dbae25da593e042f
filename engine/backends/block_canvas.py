"""Canvas layout for infill and the choice between middle-length candidates.

The decoder sees one canvas of ``C`` tokens right after the prompt.  For a
candidate middle length ``L`` the canvas is::

    [ middle: L free tokens | suffix tokens (pinned) | end-of-text (pinned) | free ]

so the suffix sits at the positions it would really have if the middle were
``L`` tokens long.  Several ``L`` run as one batch (one row each; on a GPU an
extra row is nearly free because a step is memory-bound) and the model itself
judges them: the log-likelihood it gives the pinned suffix, plus a Python
syntax check of the whole file when the language is Python.
"""
from __future__ import annotations

import ast
import functools
from dataclasses import dataclass

import torch

from engine.backends.block_sampler import Pins

#: pinned positions scored per candidate (the suffix start says most)
SCORED_PINS = 24
#: skip the syntax check for files larger than this (characters): it runs per
#: candidate on every keystroke, and ast.parse costs ~0.2 ms per 1k characters
MAX_PARSE_CHARS = 120_000


def candidate_lengths(max_new_tokens: int, canvas: int, fixed: bool, max_candidates: int = 4) -> list[int]:
    """Middle lengths to try: ``max_new_tokens`` and halvings of it (>= 2).

    The ladder is geometric because infill length errors are relative: a
    one-line fill needs ~4-16 tokens, a block 64+."""
    top = max(1, min(int(max_new_tokens), canvas - 1))
    if fixed:
        return [top]
    out: list[int] = []
    n = top
    while n >= 2 and len(out) < max_candidates:
        out.append(n)
        n //= 2
    return sorted(set(out)) or [top]


@dataclass
class InfillLayout:
    """Tensors for a batch of candidates (rows), all (B, C) on ``device``."""

    lengths: list[int]
    pins: Pins
    span: torch.Tensor  # middle positions: what stopping is judged on
    scored: torch.Tensor  # pinned positions that count in the candidate score
    has_scored: bool = False  # known on the host, so the step loop need not ask the device


def build_layout(lengths: list[int], suffix_ids: list[int], canvas: int, *, end_ids: list[int],
                 device) -> InfillLayout:
    """Pin ``suffix_ids + end_ids`` right after each candidate's middle.

    ``end_ids`` is what follows the suffix: end-of-text when the suffix reaches
    the end of the file, nothing when the window cut it (then the rest of the
    canvas is left free: we do not know it)."""
    b = len(lengths)
    mask = torch.zeros(b, canvas, dtype=torch.bool)
    tokens = torch.zeros(b, canvas, dtype=torch.long)
    span = torch.zeros(b, canvas, dtype=torch.bool)
    scored = torch.zeros(b, canvas, dtype=torch.bool)
    known = list(suffix_ids) + list(end_ids)
    for row, length in enumerate(lengths):
        span[row, :length] = True
        tail = known[: max(canvas - length, 0)]
        if tail:
            mask[row, length:length + len(tail)] = True
            tokens[row, length:length + len(tail)] = torch.tensor(tail, dtype=torch.long)
            scored[row, length:length + min(len(tail), SCORED_PINS)] = True
    return InfillLayout(lengths=list(lengths), pins=Pins(mask.to(device), tokens.to(device)),
                        span=span.to(device), scored=scored.to(device), has_scored=bool(scored.any()))


def extract_middle(ids: list[int], suffix_ids: list[int], stop_ids: set[int], min_overlap: int = 2) -> list[int]:
    """The middle tokens of one row: cut at the first end token, then drop a tail
    that merely repeats the start of the suffix (the model writing the suffix
    twice, once free and once pinned: the middle then joins the suffix early)."""
    out = []
    for t in ids:
        if t in stop_ids:
            break
        out.append(t)
    best = 0
    for k in range(min(len(out), len(suffix_ids)), min_overlap - 1, -1):
        if out[-k:] == suffix_ids[:k]:
            best = k
            break
    return out[: len(out) - best] if best else out


def parses(language: str | None, prefix: str, middle: str, suffix: str) -> bool | None:
    """True/False for Python, None when we cannot judge (other language, huge file)."""
    if (language or "").lower() not in ("python", "py"):
        return None
    if len(prefix) + len(middle) + len(suffix) > MAX_PARSE_CHARS:
        return None
    return _parse_ok(prefix + middle + suffix)


@functools.lru_cache(maxsize=16)  # candidates often agree; only small files get here
def _parse_ok(text: str) -> bool:
    try:
        ast.parse(text)
    except (SyntaxError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class Candidate:
    row: int
    length: int
    ids: list[int]
    text: str
    score: float
    syntax_ok: bool | None


def choose(candidates: list[Candidate]) -> Candidate:
    """Prefer candidates that parse (only when at least one does: the file may be
    broken elsewhere), then the higher suffix likelihood, then the shorter."""
    any_ok = any(c.syntax_ok for c in candidates)
    return max(candidates, key=lambda c: (bool(c.syntax_ok) if any_ok else True, c.score, -c.length))
