"""Sampler invariants on synthetic logits (no model needed)."""
from __future__ import annotations

import pytest
import torch

from engine.samplers import CanvasState, choose, commit_count, filler_constraints, grow

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


# -- grow: unknown length, the middle written from the left ---------------------------------

def _sure(n: int, pattern: dict[int, int], weak: int = 5) -> torch.Tensor:
    """Logits that are sure of ``pattern[pos]`` and unsure (uniform-ish) elsewhere."""
    logits = torch.zeros(n, V)
    logits[:, weak] = 0.5
    for pos, tok in pattern.items():
        logits[pos, tok] = 20.0
    return logits


def test_grow_ends_where_the_filler_is_the_models_first_choice():
    state = CanvasState.empty(12, MASK, FILL)
    # sure of three tokens, then of the filler at position 3 (the canvas end is unsure)
    for s in range(12):
        if state.done():
            break
        grow(_sure(12, {0: 7, 1: 8, 2: 9, 3: FILL}), state, 12 - s, "threshold", 0.9)
    assert state.middle_ids() == [7, 8, 9] and state.end() == 3
    assert state.ids[3:].tolist() == [FILL] * 9


def test_grow_never_ends_before_the_first_token():
    state = CanvasState.empty(6, MASK, FILL)
    decided = grow(_sure(6, {0: FILL, 1: FILL}), state, 6, "threshold", 0.9)
    assert decided >= 1 and state.ids[0] != FILL and state.committed[0]


def test_grow_commits_the_pace_from_the_left_and_sure_tokens_beyond_it():
    state = CanvasState.empty(10, MASK, FILL)
    # unsure everywhere except positions 1 and 2: pace 1 commits position 0, then 1 and 2 follow
    decided = grow(_sure(10, {1: 11, 2: 12}), state, 10, "threshold", 0.9, min_commit=1)
    assert decided == 3 and state.committed[:3].all() and not state.committed[3:].any()
    assert state.ids[1:3].tolist() == [11, 12]


def test_grow_remask_commits_exactly_the_pace():
    state = CanvasState.empty(10, MASK, FILL)
    decided = grow(_sure(10, {0: 7, 1: 8, 2: 9}), state, 10, "remask", 0.9, min_commit=2)
    assert decided == 2 and state.ids[:2].tolist() == [7, 8] and not state.committed[2:].any()


def test_grow_fills_the_whole_canvas_when_the_model_never_ends():
    state = CanvasState.empty(8, MASK, FILL)
    steps = 0
    while not state.done():
        grow(_sure(8, {}), state, 4 - min(steps, 3), "threshold", 0.9)
        steps += 1
    assert steps == 4 and state.middle_ids() == [5] * 8


def test_grow_needs_a_filler():
    with pytest.raises(ValueError):
        grow(torch.zeros(4, V), CanvasState.empty(4, MASK, None), 4, "threshold", 0.9)

