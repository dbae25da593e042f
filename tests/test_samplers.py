"""Sampler invariants on synthetic logits (no model needed)."""
from __future__ import annotations

import torch

from engine.samplers import CanvasState, choose, commit_count, filler_constraints

MASK, FILL, V = 0, 1, 20


def _run(n: int, steps: int, sampler: str, logits_fn, filler=FILL, threshold=0.9):
    state = CanvasState.empty(n, MASK, filler)
    used = 0
    for s in range(steps):
        if state.done():
            break
        logits = filler_constraints(logits_fn(state), state)
        logits[:, MASK] = float("-inf")
        choose(logits, state, steps - s, sampler, threshold)
        used += 1
    return state, used


def test_commit_count_spreads_remaining_over_steps():
    assert commit_count(10, 4) == 3
    assert commit_count(1, 10) == 1
    assert commit_count(0, 3) == 1


def test_remask_finishes_within_budget_and_commits_top_confidence():
    torch.manual_seed(0)
    for steps in (1, 3, 8, 16):
        state, used = _run(16, steps, "remask", lambda st: torch.randn(16, V))
        assert state.done() and used <= steps


def test_threshold_commits_all_confident_positions_at_once():
    def confident(state):
        logits = torch.full((8, V), -10.0)
        logits[torch.arange(8), 5 + torch.arange(8)] = 10.0
        return logits

    state, used = _run(8, 8, "threshold", confident, filler=None)
    assert used == 1 and state.middle_ids() == [5 + i for i in range(8)]


def test_filler_never_first_and_middle_is_contiguous():
    def loves_filler(state):
        logits = torch.randn(12, V)
        logits[:, FILL] = 5.0  # a collapsed model: filler everywhere
        return logits

    torch.manual_seed(1)
    state, _ = _run(12, 4, "threshold", loves_filler)
    ids = state.ids.tolist()
    assert ids[0] != FILL
    end = state.end()
    assert all(t == FILL for t in ids[end:])
    assert all(t not in (FILL, MASK) for t in ids[:end])
    assert state.middle_ids() == ids[:end]


def test_filler_forbidden_before_committed_real_token():
    state = CanvasState.empty(6, MASK, FILL)
    state.ids[4] = 7
    state.committed[4] = True
    logits = filler_constraints(torch.zeros(6, V), state)
    assert torch.isinf(logits[:5, FILL]).all() and not torch.isinf(logits[5, FILL])


def test_pace_is_kept_after_the_filler_shortens_the_middle():
    """Once the end is found, the tokens left still come ``min_commit`` at a time."""

    def ends_after_four(state):
        logits = torch.zeros(16, V)
        logits[4:, FILL] = 50.0  # sure the middle ends after 4 tokens
        logits[:4, 5] = 1.0
        return logits

    def steps_used(min_commit):
        state = CanvasState.empty(16, MASK, FILL)
        used = 0
        for s in range(16):
            if state.done():
                break
            choose(filler_constraints(ends_after_four(state), state), state, 16 - s, "remask", 0.9,
                   min_commit=min_commit)
            used += 1
        assert state.end() == 4 and state.done()
        return used

    assert steps_used(4) == 2  # the filler at step 1, the four real tokens at step 2
    assert steps_used(1) > 2


def test_end_is_decided_once():
    state = CanvasState.empty(8, MASK, FILL)
    state.ids[5:] = FILL
    state.committed[5:] = True
    logits = filler_constraints(torch.zeros(8, V), state)
    assert torch.isinf(logits[:, FILL]).all()
