"""Alternative middles from one canvas (engine.branching): the runner-up decisions the
sampler keeps, the branches made from them, and the backend returning them."""
from __future__ import annotations

import copy

import pytest
import torch

from engine.backends.encoder_cache import CanvasStepper
from engine.branching import BranchPoint, branch, branch_points, denoise_branches
from engine.cancellation import CancellationToken
from engine.samplers import CanvasState, grow
from engine.types import InfillRequest

MASK, FILL, V = 0, 1, 12


def _logits(rows: list[dict[int, float]], n: int) -> torch.Tensor:
    """Logits whose softmax gives each row the probabilities listed (the rest share what is left)."""
    probs = torch.zeros(n, V)
    for i, row in enumerate(rows):
        rest = (1.0 - sum(row.values())) / (V - len(row))
        probs[i] = rest
        for token, p in row.items():
            probs[i, token] = p
    return probs.log()


def test_grow_keeps_the_runner_up_of_every_decision():
    state = CanvasState.empty(4, MASK, FILL)
    rows = [{5: 0.6, 6: 0.3}, {7: 0.5, FILL: 0.4}, {FILL: 0.7, 8: 0.2}, {FILL: 0.9}]
    while not state.done():
        grow(_logits(rows, 4), state, 4, "threshold", 0.95)
    assert state.middle_ids() == [5, 7]
    assert state.other_ids is not None and state.other_confidence is not None
    assert state.other_ids[:3].tolist() == [6, FILL, 8]  # another token; ending there; going on
    assert state.other_confidence[:3].tolist() == pytest.approx([0.3, 0.4, 0.2], abs=1e-6)


def test_a_canvas_nothing_branches_from_keeps_no_runner_ups_and_decides_the_same():
    rows = [{5: 0.6, 6: 0.3}, {7: 0.5, FILL: 0.4}, {FILL: 0.7, 8: 0.2}, {FILL: 0.9}]
    kept, plain = CanvasState.empty(4, MASK, FILL), CanvasState.empty(4, MASK, FILL, others=False)
    for state in (kept, plain):
        while not state.done():
            grow(_logits(rows, 4), state, 4, "threshold", 0.95)
    assert plain.other_ids is None and plain.other_confidence is None and branch_points(plain, 3) == []
    assert torch.equal(plain.ids, kept.ids) and torch.equal(plain.confidence, kept.confidence)


def test_the_filler_is_no_runner_up_before_the_shortest_middle():
    state = CanvasState.empty(3, MASK, FILL)
    grow(_logits([{5: 0.5, FILL: 0.4, 6: 0.05}, {FILL: 0.9}, {FILL: 0.9}], 3), state, 3, "remask", 0.9,
         min_length=1)
    assert state.other_ids is not None and int(state.other_ids[0]) == 6


def _decided(ids: list[int], other: list[tuple[int, float]]) -> CanvasState:
    state = CanvasState.empty(len(ids), MASK, FILL)
    for i, token in enumerate(ids):
        state.ids[i], state.committed[i] = token, True
    assert state.other_ids is not None and state.other_confidence is not None
    for i, (token, p) in enumerate(other):
        state.other_ids[i], state.other_confidence[i] = token, p
    return state


def test_branch_points_are_the_likeliest_other_decisions_best_first():
    state = _decided([5, 7, FILL, FILL], [(6, 0.3), (FILL, 0.45), (8, 0.2)])
    assert branch_points(state, 2) == [BranchPoint(1, FILL, pytest.approx(0.45)), BranchPoint(0, 6, pytest.approx(0.3))]
    assert len(branch_points(state, 5)) == 3
    assert branch_points(state, 0) == []


def test_a_branch_keeps_the_primary_before_its_point_and_decides_again_after_it():
    state = _decided([5, 7, 9, FILL, FILL], [(6, 0.3), (4, 0.2), (FILL, 0.1), (3, 0.05)])
    b = branch(state, BranchPoint(1, 4, 0.2))
    assert b.ids[:2].tolist() == [5, 4] and b.committed.tolist() == [True, True, False, False, False]
    assert not b.done() and state.ids.tolist() == [5, 7, 9, FILL, FILL]  # the primary is untouched
    ended = branch(state, BranchPoint(1, FILL, 0.4))
    assert ended.done() and ended.middle_ids() == [5]
    going_on = branch(state, BranchPoint(3, 3, 0.05))
    assert going_on.ids[:4].tolist() == [5, 7, 9, 3] and not going_on.done()


def test_branches_are_denoised_together_in_batched_passes():
    state = _decided([5, 7, FILL, FILL], [(6, 0.3), (8, 0.2), (2, 0.1)])
    batches: list[int] = []

    def forward(layouts: torch.Tensor) -> torch.Tensor:
        batches.append(layouts.shape[0])
        return torch.stack([_logits([{9: 0.9}] * 4, 4)] * layouts.shape[0])

    def decide(rows: torch.Tensor, st: CanvasState, steps_left: int) -> None:
        grow(rows, st, steps_left, "remask", 0.9, min_commit=4)

    def layouts(states: list[CanvasState]) -> torch.Tensor:
        return torch.stack([s.ids for s in states])

    branches, passes = denoise_branches(state, 2, forward, layouts, decide, 8, CancellationToken())
    assert [b.middle_ids()[:2] for b in branches] == [[6, 9], [5, 8]]
    assert passes == 1 and batches == [2]


def test_branching_stops_when_cancelled():
    state = _decided([5, 7, FILL], [(6, 0.3), (8, 0.2)])
    token = CancellationToken()
    token.cancel()
    from engine.errors import Cancelled

    with pytest.raises(Cancelled):
        denoise_branches(state, 2, lambda x: x, lambda s: torch.zeros(len(s), 3), lambda *a: None, 4, token)


def test_batched_branch_steps_are_each_branch_s_own_step(tiny_engine):
    """One batched pass over two canvases gives each the logits a step over it alone
    gives, and leaves the kept keys and values as they were."""
    model = tiny_engine.backend.model
    ids = torch.randint(5, 500, (1, 128), generator=torch.Generator().manual_seed(5))
    stepper = CanvasStepper(model, 128, 128)
    stepper.full(ids, 40, 60)
    kept = copy.deepcopy(stepper.kept)
    other = ids.clone()
    other[0, 45:50] = torch.arange(100, 105)
    both = stepper.step_branches(torch.cat([ids, other]), 24, 76, 40, 60)
    assert all(torch.equal(a.keys, b.keys) and torch.equal(a.values, b.values) for a, b in zip(kept, stepper.kept))
    for row, layout in enumerate((ids, other)):
        alone = copy.deepcopy(stepper)
        torch.testing.assert_close(both[row:row + 1], alone.step(layout, 24, 76, 40, 60), rtol=1e-4, atol=1e-4)


REQUEST = dict(prefix="def area(width, height):\n    return ", suffix="\n\n\nprint(area(2, 3))\n")


def test_the_backend_returns_distinct_alternatives_and_the_same_primary(tiny_engine):
    one = tiny_engine.infill(InfillRequest(**REQUEST))
    three = tiny_engine.infill(InfillRequest(**REQUEST, alternatives=3))
    assert three.middle == one.middle and three.confidence == one.confidence
    assert not one.alternatives and 1 <= len(three.alternatives) <= 2
    texts = [one.middle] + [a.middle for a in three.alternatives]
    assert len(set(texts)) == len(texts)
    for alt in three.alternatives:
        assert len(alt.confidence) == len(alt.token_ends) and alt.token_ends[-1] == len(alt.middle)
    assert three.timings["branch_forwards"] >= 1


def test_token_ends_locate_each_token_of_the_middle(tiny_engine):
    result = tiny_engine.infill(InfillRequest(**REQUEST))
    assert len(result.token_ends) == len(result.confidence) == result.tokens
    assert result.token_ends == sorted(result.token_ends) and result.token_ends[-1] == len(result.middle)


def test_alternatives_are_bounded():
    with pytest.raises(ValueError, match="alternatives"):
        InfillRequest(prefix="x", alternatives=0)
    with pytest.raises(ValueError, match="alternatives"):
        InfillRequest(prefix="x", alternatives=9)


def test_keeping_runner_ups_leaves_the_decisions_as_they_were():
    """bf16 logits tie often: the token committed is the one ``max`` picks, as before the
    runner-ups were kept (``topk`` may pick another of the tied tokens)."""
    generator = torch.Generator().manual_seed(7)
    logits = torch.randint(0, 3, (16, V), generator=generator).float()  # many exact ties
    state = CanvasState.empty(16, MASK, FILL)
    grow(logits, state, 16, "remask", 0.9, min_commit=16)
    real = torch.softmax(logits, dim=-1)
    real[:, FILL] = 0.0
    expected = real.max(dim=-1).indices
    end = state.end()
    assert state.ids[:end].tolist() == expected[:end].tolist()
    assert state.other_ids is not None and all(
        int(state.other_ids[i]) != int(state.ids[i]) for i in range(end))
