"""Canvas layout for infill: where the middle goes and what is pinned after it.

The decoder sees one canvas of ``C`` tokens right after the prompt.  For a
candidate middle length ``L`` the canvas is::

    [ middle: L free tokens | suffix tokens (pinned) | end-of-text (pinned) | free ]

so the suffix sits at the positions it would really have if the middle were
``L`` tokens long.  Several ``L`` run as one batch (one row each; on a GPU an
extra row is nearly free because a step is memory-bound); which lengths, and
which finished row wins, is ``block_length``'s business.
"""
from __future__ import annotations

import ast
import functools
from dataclasses import dataclass

import torch

from engine.backends.block_sampler import Pins

#: skip the syntax check for files larger than this (characters): it runs per
#: candidate on every keystroke, and ast.parse costs ~0.2 ms per 1k characters
MAX_PARSE_CHARS = 120_000


@dataclass
class InfillLayout:
    """Tensors for a batch of candidates (rows), all (B, C) on ``device``."""

    lengths: list[int]
    pins: Pins
    span: torch.Tensor  # middle positions: what stopping is judged on


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
    known = list(suffix_ids) + list(end_ids)
    for row, length in enumerate(lengths):
        span[row, :length] = True
        tail = known[: max(canvas - length, 0)]
        if tail:
            mask[row, length:length + len(tail)] = True
            tokens[row, length:length + len(tail)] = torch.tensor(tail, dtype=torch.long)
    return InfillLayout(lengths=list(lengths), pins=Pins(mask.to(device), tokens.to(device)),
                        span=span.to(device))


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
