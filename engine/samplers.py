"""Samplers: decide which canvas positions to commit after each forward pass.

Plain functions over tensors so they are testable on CPU without a model.
The canvas holds ``N`` positions; ``MASK`` marks positions still to decide.

Unknown middle length is handled with an end-of-infill *filler* token: the
canvas is ``max_new_tokens`` long and the model writes the filler after the
middle.  A small model tends to collapse to all-filler, so the filler is
constrained (``filler_constraints``): never at position 0, never before a
committed real token, and committing it at position i fills every later
position, so the middle is always a contiguous run of real tokens.  The end is
decided once: after the first filler commit no further filler is allowed, which
stops the cascade where each step moves the end one block to the left (seen
with the bundled model: a 32-token canvas shrank to 1 token over 8 steps).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

NEG_INF = float("-inf")


@dataclass
class CanvasState:
    """Committed tokens of the canvas; ``ids[i] == mask_id`` where undecided."""

    ids: torch.Tensor  # (N,) long
    committed: torch.Tensor  # (N,) bool
    confidence: torch.Tensor  # (N,) float: probability at commit time
    mask_id: int
    filler_id: int | None

    @classmethod
    def empty(cls, n: int, mask_id: int, filler_id: int | None, device: torch.device | str = "cpu") -> CanvasState:
        return cls(
            ids=torch.full((n,), mask_id, dtype=torch.long, device=device),
            committed=torch.zeros(n, dtype=torch.bool, device=device),
            confidence=torch.zeros(n, dtype=torch.float32, device=device),
            mask_id=mask_id,
            filler_id=filler_id,
        )

    def end(self) -> int:
        """Index of the first committed filler (the middle's end), or N."""
        if self.filler_id is None:
            return self.ids.numel()
        hits = ((self.ids == self.filler_id) & self.committed).nonzero()
        return int(hits[0]) if hits.numel() else self.ids.numel()

    def remaining(self) -> int:
        """Undecided positions inside the middle (before the first filler)."""
        return int((~self.committed[: self.end()]).sum())

    def done(self) -> bool:
        return self.remaining() == 0

    def middle_ids(self) -> list[int]:
        """Committed real tokens before the end, in order (undecided ones left out)."""
        end = self.end()
        keep = self.committed[:end]
        return self.ids[:end][keep].tolist()

    def middle_confidence(self) -> list[float]:
        end = self.end()
        return self.confidence[:end][self.committed[:end]].tolist()


def filler_constraints(logits: torch.Tensor, state: CanvasState, min_length: int = 1) -> torch.Tensor:
    """Forbid the filler where it would break a contiguous middle (see module doc)."""
    if state.filler_id is None:
        return logits
    if state.end() < state.ids.numel():  # the end is decided once: no retreat
        logits = logits.clone()
        logits[:, state.filler_id] = NEG_INF
        return logits
    n = logits.shape[0]
    real = state.committed & (state.ids != state.filler_id)
    last_real = int(real.nonzero().max()) if real.any() else -1
    forbid_upto = max(last_real + 1, min_length)
    if forbid_upto > 0:
        logits = logits.clone()
        logits[: min(forbid_upto, n), state.filler_id] = NEG_INF
    return logits


def forbid_tokens(logits: torch.Tensor, token_ids: list[int]) -> torch.Tensor:
    """Never produce these ids (mask, padding, unknown) in the canvas."""
    if token_ids:
        logits = logits.clone()
        logits[:, token_ids] = NEG_INF
    return logits


def commit_count(remaining: int, steps_left: int) -> int:
    """Fewest commits this step so the canvas finishes within the step budget."""
    return max(1, math.ceil(remaining / max(1, steps_left)))


def choose(
    logits: torch.Tensor,
    state: CanvasState,
    steps_left: int,
    sampler: str,
    threshold: float,
    generator: torch.Generator | None = None,
    temperature: float = 0.0,
    min_commit: int = 1,
) -> torch.Tensor:
    """Commit positions for one step; returns the indices committed (may be empty if done).

    ``remask`` (low-confidence remasking): commit the ``k`` most confident
    undecided positions, ``k`` spreading the rest evenly over the steps left.
    ``threshold`` (confidence-threshold parallel commit): commit every undecided
    position whose confidence is at least ``threshold``, and at least ``k``.
    ``min_commit`` keeps the pace set by the step budget after the filler has
    shortened the middle (otherwise the few tokens left would trickle out one
    per step).
    """
    n = state.ids.numel()
    end = state.end()
    undecided = (~state.committed).clone()
    undecided[end:] = False
    remaining = int(undecided.sum())
    if remaining == 0:
        return torch.empty(0, dtype=torch.long)
    probs = torch.softmax(logits.float(), dim=-1)
    if temperature > 0:
        sampled = torch.multinomial(torch.softmax(logits.float() / temperature, -1), 1, generator=generator).squeeze(-1)
        conf = probs.gather(-1, sampled[:, None]).squeeze(-1)
        tokens = sampled
    else:
        conf, tokens = probs.max(dim=-1)
    conf = torch.where(undecided, conf, torch.full_like(conf, -1.0))
    k = max(commit_count(remaining, steps_left), min_commit)
    if sampler == "threshold":
        above = int(((conf >= threshold) & undecided).sum())
        k = max(k, above)
    k = min(k, remaining)
    order = torch.argsort(conf, descending=True, stable=True)[:k]
    # a filler commit ends the middle: positions after the earliest committed filler are
    # forced to filler, so drop chosen positions beyond it (they would be overwritten)
    chosen = order
    if state.filler_id is not None:
        fills = chosen[tokens[chosen] == state.filler_id]
        if fills.numel():
            first = int(fills.min())
            chosen = chosen[chosen <= first]
    state.ids[chosen] = tokens[chosen]
    state.committed[chosen] = True
    state.confidence[chosen] = conf[chosen].float()
    if state.filler_id is not None:
        first_fill = state.end()
        if first_fill < n:
            state.ids[first_fill:] = state.filler_id
            state.committed[first_fill:] = True
    return chosen
