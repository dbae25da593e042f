"""Samplers: decide which canvas positions to commit after each forward pass.

Plain functions over tensors so they are testable on CPU without a model.
The canvas holds ``N`` positions; ``MASK`` marks positions still to decide.

Unknown middle length is handled with an end-of-infill *filler* token that
the model writes after the middle (it was trained with a random number of
fillers after each middle).  On an all-mask canvas the model cannot know the
length, but once the middle is written it knows that nothing more belongs
there.  So ``grow`` writes the middle from the left, several positions per
forward pass (the pace the step budget needs, plus every further position
the model is sure of), and ends it where the filler is the model's own first
choice.  Every position still sees the whole suffix.

Measured with the GPU-trained bundled model (docs/BENCHMARKS.md): committing
the most confident positions anywhere in the canvas, as ``choose`` does, put
fillers at the canvas end first and pushed the pace's forced guesses past the
real end, so one-line middles filled the whole canvas (0 % exact match);
growing from the left recovers the model's own length.

``choose`` remains for fixed-length canvases (no filler), where any order is fine.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

NEG_INF = float("-inf")


@dataclass
class CanvasState:
    """Committed tokens of the canvas; ``ids[i] == mask_id`` where undecided.

    ``other_ids``/``other_confidence`` keep, per position ``grow`` decided, the
    model's best choice that was *not* taken there (the runner-up token, the
    filler that would have ended the middle there, or at the end the token that
    would have continued it): the decisions an alternative suggestion may take
    instead (``engine.branching``)."""

    ids: torch.Tensor  # (N,) long
    committed: torch.Tensor  # (N,) bool
    confidence: torch.Tensor  # (N,) float: probability at commit time
    mask_id: int
    filler_id: int | None
    other_ids: torch.Tensor | None = None  # (N,) long: the best choice not taken (mask_id: none)
    other_confidence: torch.Tensor | None = None  # (N,) float: its probability

    @classmethod
    def empty(cls, n: int, mask_id: int, filler_id: int | None, device: torch.device | str = "cpu",
              others: bool = True) -> CanvasState:
        """An undecided canvas; ``others=False`` keeps no runner-ups (nothing will branch from it,
        and ``grow`` then skips finding them)."""
        return cls(
            ids=torch.full((n,), mask_id, dtype=torch.long, device=device),
            committed=torch.zeros(n, dtype=torch.bool, device=device),
            confidence=torch.zeros(n, dtype=torch.float32, device=device),
            mask_id=mask_id,
            filler_id=filler_id,
            other_ids=torch.full((n,), mask_id, dtype=torch.long, device=device) if others else None,
            other_confidence=torch.zeros(n, dtype=torch.float32, device=device) if others else None,
        )

    def clone(self) -> CanvasState:
        """An independent copy (a branch starts from the primary's state)."""
        def copy(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.clone()
        return CanvasState(self.ids.clone(), self.committed.clone(), self.confidence.clone(), self.mask_id,
                           self.filler_id, copy(self.other_ids), copy(self.other_confidence))

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


def grow(
    logits: torch.Tensor,
    state: CanvasState,
    steps_left: int,
    sampler: str,
    threshold: float,
    min_commit: int = 1,
    min_length: int = 1,
) -> int:
    """Extend the middle from its left end for one step; returns how many positions
    were decided (the filler counts).  Positions ``state`` holds committed stay.

    From the first undecided position, in order: stop with the filler where it is
    the model's top choice (at or after ``min_length``); otherwise commit the best
    real token while fewer than the pace ``k`` have been committed, or (sampler
    ``threshold``) while its probability is at least ``threshold``.
    """
    if state.filler_id is None:
        raise ValueError("grow needs a filler token; use choose for fixed-length canvases")
    n = state.ids.numel()
    start = int(state.committed.long().argmin()) if not bool(state.committed.all()) else n
    if start >= n or state.done():
        return 0
    probs = torch.softmax(logits.float(), dim=-1)
    real = probs.clone()
    real[:, state.filler_id] = 0.0
    conf, tokens = real.max(dim=-1)  # max, not topk: among tied tokens they may pick different ones
    keep_others = state.other_ids is not None
    if keep_others:
        runner_up_prob, runner_up = real.scatter(1, tokens[:, None], 0.0).max(dim=-1)
    filler_prob = probs[:, state.filler_id]
    filler_first = filler_prob >= conf
    k = max(commit_count(n - start, steps_left), min_commit)
    decided = 0
    for pos in range(start, n):
        if bool(state.committed[pos]):
            continue
        if pos >= min_length and bool(filler_first[pos]):
            state.ids[pos:] = state.filler_id
            state.confidence[pos] = filler_prob[pos]
            state.committed[pos:] = True
            _note_other(state, pos, tokens[pos], conf[pos])  # continuing the middle instead
            return decided + 1
        sure = sampler == "threshold" and float(conf[pos]) >= threshold
        if decided >= k and not sure:
            break
        state.ids[pos] = tokens[pos]
        state.confidence[pos] = conf[pos]
        state.committed[pos] = True
        if keep_others:
            other, other_prob = runner_up[pos], runner_up_prob[pos]
            if pos >= min_length and bool(filler_prob[pos] > other_prob):  # ending the middle here instead
                other, other_prob = torch.tensor(state.filler_id), filler_prob[pos]
            _note_other(state, pos, other, other_prob)
        decided += 1
    return decided


def _note_other(state: CanvasState, pos: int, token: torch.Tensor, probability: torch.Tensor) -> None:
    """Remember the best choice not taken at ``pos`` (see ``CanvasState``)."""
    if state.other_ids is not None and state.other_confidence is not None:
        state.other_ids[pos] = token
        state.other_confidence[pos] = probability
