"""Choosing the middle's length in the DiffusionGemma backend: the search
(``block_length``) and the clean rescoring (``block_rescore``).  Whether the
rule finds the right length on a trained model: ``test_block_length_choice.py``.
"""
from __future__ import annotations

import torch
from block_tiny import PREFIX, SUFFIX, backend, fresh, model_dir  # noqa: F401 - fixtures

from engine.backends.block_length import CLEAR_MARGIN, Hypothesis, choose, ladder, refine
from engine.backends.block_rescore import SCORED_PINS, clean_canvases, rescore
from engine.engine import Engine
from engine.types import InfillRequest

# -- which lengths ---------------------------------------------------------------------

def test_ladder_spreads_lengths_geometrically():
    assert ladder(24, 4, 2) == [2, 5, 10, 24]
    assert ladder(32, 4, 2) == [2, 5, 13, 32]
    assert ladder(255, 4, 2) == [2, 10, 51, 255]
    assert ladder(3, 4, 2) == [2, 3]  # fewer distinct lengths than rows
    assert ladder(9, 1) == [9]


def test_refine_tries_the_bracket_around_the_best():
    tried = {2, 5, 10, 24}
    assert refine(tried, 6, 4, 24) == [6, 7, 8, 9]  # between 5 and 10, nearest to 6 first
    assert refine(tried, 10, 3, 24) == [9, 11, 12]  # the best's own length is tried already
    assert refine(tried, 24, 2, 24) == [22, 23]
    assert refine({4, 5, 6}, 5, 4, 24) == []  # neighbours adjacent: nothing left to try
    assert refine({2, 4}, 1, 4, 24) == [1]  # an empty best is refined from length 1


def test_refine_prefers_small_relative_errors():
    """Near a long best, lengths a few tokens away are near in ratio too."""
    assert refine({2, 10, 50, 255}, 50, 4, 255) == [48, 49, 51, 52]


def _h(ids, score, syntax_ok=None, text=None):
    return Hypothesis(ids=tuple(ids), text="x" * len(ids) if text is None else text, row_length=len(ids),
                      score=score, syntax_ok=syntax_ok)


def test_choose_takes_the_best_score():
    assert choose([_h([1], -2.0), _h([1, 2, 3], -1.0), _h([1, 2], -1.5)]).ids == (1, 2, 3)


def test_an_empty_middle_must_win_clearly():
    empty = _h([], -1.0, text="")
    some = _h([5, 6], -1.0 - CLEAR_MARGIN / 2)
    assert choose([empty, some]) is some  # a little better is not enough
    assert choose([_h([], -1.0, text=""), _h([5, 6], -1.0 - 2 * CLEAR_MARGIN)]).ids == ()  # clearly better
    assert choose([_h([7], -3.0, text="\n"), _h([5], -3.1)]).ids == (5,)  # whitespace only counts as empty
    assert choose([empty]) is empty  # nothing else found


def test_syntax_breaks_near_ties_only():
    broken = _h([1, 2], -1.0, syntax_ok=False)
    parses_close = _h([1, 2, 3], -1.0 - CLEAR_MARGIN / 2, syntax_ok=True)
    parses_far = _h([1, 2, 3, 4], -1.0 - 2 * CLEAR_MARGIN, syntax_ok=True)
    assert choose([broken, parses_close]) is parses_close
    assert choose([broken, parses_far]) is broken  # a clearly better score is not overridden
    assert choose([_h([1], -1.0, syntax_ok=None), parses_far]).ids == (1,)  # unknown syntax is not a failure


def test_ties_go_to_the_longer_middle():
    assert choose([_h([1], -1.0), _h([1, 2], -1.0)]).ids == (1, 2)


# -- clean rescoring ----------------------------------------------------------------------

def test_clean_canvases_lay_out_the_middle_as_returned():
    tokens, scored = clean_canvases([[7, 8], []], known=[20, 21, 1], canvas=8, fill=0, device="cpu")
    assert tokens.tolist() == [[7, 8, 20, 21, 1, 0, 0, 0], [20, 21, 1, 0, 0, 0, 0, 0]]
    assert scored.tolist() == [[True] * 5 + [False] * 3, [True] * 3 + [False] * 5]
    long_known = list(range(10, 10 + 40))
    _, scored = clean_canvases([[7]], known=long_known, canvas=64, fill=0, device="cpu")
    assert int(scored.sum()) == 1 + SCORED_PINS  # the seam, not the whole suffix


def test_rescore_prefers_the_middle_that_fits_both_sides():
    """A fake decoder that knows the true text: the right middle scores best,
    a short one (seam) and a long one (tokens with nothing to say) lower."""
    truth = [5, 6, 7, 8, 20, 21, 1, 0]
    vocab = 32

    def forward(canvas: torch.Tensor) -> torch.Tensor:
        logits = torch.full((*canvas.shape, vocab), -4.0)
        logits[..., :].scatter_(-1, torch.tensor(truth).expand_as(canvas).unsqueeze(-1), 4.0)
        return logits

    scores, probs = rescore(forward, [[5, 6, 7, 8], [5, 6], [5, 6, 7, 8, 9, 9]], known=[20, 21, 1], canvas=8,
                            fill=0, device="cpu")
    assert scores[0] > scores[1] and scores[0] > scores[2]
    assert len(probs[0]) == 4 and all(p > 0.9 for p in probs[0])


def _spy_denoise(backend, calls: list):
    original = backend.denoise

    def spy(kv, canvas, **kwargs):
        calls.append(kwargs)
        return original(kv, canvas, **kwargs)

    return original, spy


# -- the search through the engine ----------------------------------------------------------

def test_a_second_round_refines_around_the_best_within_the_step_budget(fresh):
    """Rows that stop early leave steps for a second round; the step cap holds."""
    from engine.backends.block_sampler import SamplerSettings

    calls: list = []
    original, fresh.denoise = _spy_denoise(fresh, calls)
    saved = fresh.options.sampler
    fresh.options.sampler = SamplerSettings(steps=12, stability_threshold=0, confidence_threshold=50.0)
    try:
        drafts = list(Engine(fresh).stream(InfillRequest(PREFIX, SUFFIX, max_new_tokens=24, steps=12, seed=0)))
    finally:
        fresh.denoise = original
        fresh.options.sampler = saved
    assert len(calls) == 2
    first = set(calls[0]["span"].sum(-1).tolist())
    second = set(calls[1]["span"].sum(-1).tolist())
    assert first == {2, 5, 10, 24} and second and not second & first
    assert calls[1]["steps"] < calls[0]["steps"] == 12  # the second round gets what the first left
    assert drafts[-1].step <= 12
    steps = [d.step for d in drafts]
    assert steps == list(range(1, len(drafts) + 1))  # one draft per step, the last one final
    assert drafts[-1].done


def test_fixed_length_is_one_row_and_one_round(fresh):
    calls: list = []
    original, fresh.denoise = _spy_denoise(fresh, calls)
    try:
        res = Engine(fresh).infill(InfillRequest(PREFIX, SUFFIX, max_new_tokens=9, steps=3, fixed_length=True))
    finally:
        fresh.denoise = original
    assert len(calls) == 1 and calls[0]["span"].sum(-1).tolist() == [9]
    assert res.timings["rescore_passes"] == 0
