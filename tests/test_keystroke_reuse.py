"""Starting a request from the keys and values an earlier one kept
(engine.backends.keystroke_reuse), on the tiny on-disk model every engine test uses."""
from __future__ import annotations

import pytest
import torch

from engine.backends.encoder_cache import CanvasStepper
from engine.backends.keystroke_reuse import (
    MAX_CHANGED,
    Base,
    changed_near_canvas,
    positions_to_recompute,
    rebuilt_kept,
    shared_positions,
    worth_reusing,
)
from engine.cancellation import CancellationToken
from engine.errors import Cancelled
from engine.types import InfillRequest


def _base(ids: list[int], start: int, stop: int) -> Base:
    return Base(ids=torch.tensor(ids), kept=[], start=start, stop=stop, length=len(ids))


def test_shared_positions_follow_a_window_that_slid_and_a_suffix_that_moved():
    # base: prefix 10..19, canvas of 3 masks (0), suffix 50..54
    old = list(range(10, 20)) + [0, 0, 0] + list(range(50, 55))
    # the user typed: the window dropped token 10 at its start and ends in a new token 99
    new = list(range(11, 20)) + [99] + [0, 0, 0] + list(range(50, 55))
    pairs = shared_positions(_base(old, 10, 13), torch.tensor(new), 10, 13, len(new))
    assert pairs[:9] == [(i, i + 1) for i in range(9)]  # prefix, one position on in the base
    assert pairs[9:] == [(13 + k, 13 + k) for k in range(5)]  # the suffix, same place (same canvas start)
    assert (9, 10) not in pairs  # the new token is recomputed


def test_shared_positions_match_the_suffix_after_a_longer_prefix():
    old = [5, 6, 7] + [0, 0] + [8, 9]
    new = [5, 6, 7, 4] + [0, 0] + [8, 9]
    pairs = shared_positions(_base(old, 3, 5), torch.tensor(new), 4, 6, len(new))
    assert pairs == [(0, 0), (1, 1), (2, 2), (6, 5), (7, 6)]


def test_a_first_token_cut_differently_costs_only_that_token():
    """The server's window starts some characters before the cursor: as the user types,
    its first token may be cut differently; the rest of the prefix is still shared."""
    old = [3] + list(range(10, 20)) + [0, 0] + [50, 51]
    new = [4] + list(range(10, 20)) + [0, 0] + [50, 51]
    pairs = shared_positions(_base(old, 11, 13), torch.tensor(new), 11, 13, len(new))
    assert pairs == [(i, i) for i in range(1, 11)] + [(13, 13), (14, 14)]


def test_reuse_needs_most_of_the_context_and_few_changes_near_the_canvas():
    old = list(range(10, 30))
    new = list(range(40, 60))
    pairs = shared_positions(_base(old, 10, 12), torch.tensor(new), 10, 12, 20)
    assert pairs == [] and not worth_reusing(pairs, 10, 12, 20)
    # 200 context tokens around a canvas at 100..108: changes far from the canvas do not count
    everything = [(i, i) for i in range(208) if not 100 <= i < 108]
    far = [(i, j) for i, j in everything if i not in (0, 1, 2, 205, 206, 207)]
    assert changed_near_canvas(far, 100, 108, 208) == 0 and worth_reusing(far, 100, 108, 208)
    near = [(i, j) for i, j in everything if i not in range(99 - MAX_CHANGED, 100)]
    assert changed_near_canvas(near, 100, 108, 208) == MAX_CHANGED + 1 and not worth_reusing(near, 100, 108, 208)
    assert worth_reusing(near[1:] + [(99 - MAX_CHANGED, 99 - MAX_CHANGED)], 100, 108, 208)
    assert not worth_reusing(everything[:100], 100, 108, 208)  # half the context: another window


def test_positions_to_recompute_are_the_changes_the_canvas_and_their_neighbours():
    pairs = [(i, i) for i in range(40) if i not in (5,)] + [(i, i) for i in range(50, 80)]
    got = positions_to_recompute(pairs, 40, 50, 80, margin=2).tolist()
    assert got == [3, 4, 5, 6, 7] + list(range(38, 52))


def test_rebuilt_keys_are_a_fresh_forward_s_where_tokens_are_shared(dtype_engine, dtype):
    """A first layer's keys depend only on the token and its position: rebuilt from a
    base whose window sat one token further on, they are a fresh forward's keys, bit
    for bit, in float32 and in bfloat16 (rotated from the keys before rotation, not
    rotated twice)."""
    model = dtype_engine.backend.model
    assert str(model.dtype) == f"torch.{dtype}"
    generator = torch.Generator().manual_seed(3)
    tokens = torch.randint(5, 500, (200,), generator=generator)
    old = torch.cat((tokens[:100], torch.zeros(8, dtype=torch.long), tokens[100:190]))
    new = torch.cat((tokens[1:100], torch.tensor([7]), torch.zeros(8, dtype=torch.long), tokens[100:190]))
    base_stepper = CanvasStepper(model, 198, 198, keep_raw_keys=True)
    base_stepper.full(old[None].to(model.device), 100, 108)
    base = Base(ids=old, kept=base_stepper.kept, start=100, stop=108, length=198)
    pairs = shared_positions(base, new, 100, 108, 198)
    assert len(pairs) == 99 + 90
    stepper = CanvasStepper(model, 198, 198)
    kept = rebuilt_kept(stepper, base, pairs)
    fresh = CanvasStepper(model, 198, 198)
    fresh.full(new[None].to(model.device), 100, 108)
    at = torch.tensor([i for i, _ in pairs])
    assert torch.equal(kept[0].keys[:, :, at], fresh.kept[0].keys[:, :, at])
    assert torch.equal(kept[0].values[:, :, at], fresh.kept[0].values[:, :, at])
    assert not torch.equal(base.kept[0].keys[:, :, at], kept[0].keys[:, :, at])  # they did move


def test_a_base_without_keys_before_rotation_is_refused(tiny_engine):
    """A stepper that kept only rotated keys cannot be a base (it would round twice)."""
    model = tiny_engine.backend.model
    ids = torch.randint(5, 500, (1, 64), generator=torch.Generator().manual_seed(4))
    stepper = CanvasStepper(model, 64, 64)
    stepper.full(ids.to(model.device), 30, 34)
    base = Base(ids=ids[0], kept=stepper.kept, start=30, stop=34, length=64)
    with pytest.raises(ValueError, match="before rotation"):
        rebuilt_kept(CanvasStepper(model, 64, 64), base, shared_positions(base, ids[0], 30, 34, 64))


REQUEST = dict(prefix="def add(a, b):\n    return a", suffix="\n\nprint(add(1, 2))\n", max_new_tokens=8)


@pytest.fixture()
def backend(tiny_engine):
    backend = tiny_engine.backend
    backend.forget_previous()
    yield backend
    backend.forget_previous()


def test_a_request_that_asks_starts_from_the_base_and_leaves_it_in_place(tiny_engine, backend):
    first = tiny_engine.infill(InfillRequest(**REQUEST, reuse_previous=True))
    assert not first.timings["reused_previous"]
    base = backend.previous
    assert base is not None
    typed = dict(REQUEST, prefix=REQUEST["prefix"] + " +")
    second = tiny_engine.infill(InfillRequest(**typed, reuse_previous=True))
    assert second.timings["reused_previous"]
    assert backend.previous is base  # never chained: a reused request is no base
    plain = tiny_engine.infill(InfillRequest(**typed))
    assert not plain.timings["reused_previous"] and backend.previous is base


def test_the_same_request_again_with_one_forward_gives_the_same_answer(dtype_engine):
    """With one forward per request the base holds the full forward of the very same
    ids, so the reused first forward over the canvas is exact, in either dtype."""
    one = dict(REQUEST, steps=1, threshold=1.0)
    dtype_engine.backend.forget_previous()
    try:
        first = dtype_engine.infill(InfillRequest(**one, reuse_previous=True))
        again = dtype_engine.infill(InfillRequest(**one, reuse_previous=True))
    finally:
        dtype_engine.backend.forget_previous()
    assert again.timings["reused_previous"]
    assert again.middle == first.middle


def test_requests_that_do_not_ask_never_keep_a_base(tiny_engine, backend):
    tiny_engine.infill(InfillRequest(**REQUEST))
    assert backend.previous is None


def test_a_request_cancelled_after_its_first_forward_leaves_that_forward_as_base(tiny_engine, backend):
    """The next keystroke usually cancels a request during its later steps: the
    full first forward it finished is still the next request's base."""
    token = CancellationToken()
    drafts = tiny_engine.stream(InfillRequest(**dict(REQUEST, steps=8), reuse_previous=True), token)
    first = next(drafts)
    assert not first.done and backend.previous is not None
    base = backend.previous
    token.cancel()
    with pytest.raises(Cancelled):
        next(drafts)
    assert backend.previous is base and len(base.kept) == len(backend.model.model.layers)
    typed = dict(REQUEST, prefix=REQUEST["prefix"] + " +")
    assert tiny_engine.infill(InfillRequest(**typed, reuse_previous=True)).timings["reused_previous"]


def _cancel_at_layer(backend, token: CancellationToken, at: int, calls: list[int]) -> list:
    """Hooks that cancel ``token`` when layer ``at`` starts (the stepper runs a layer by its
    parts, so the hook sits on its first one) and record which layers started."""
    def hook(index: int):
        def before(*_: object) -> None:
            calls.append(index)
            if index == at:
                token.cancel()
        return before
    return [layer.attn_norm.register_forward_pre_hook(hook(i)) for i, layer in enumerate(backend.model.model.layers)]


def test_a_keystroke_during_the_first_forward_lets_it_finish_as_the_base(tiny_engine, backend):
    """Cancelled in the middle of its full first forward (the next key comes while it
    runs), a request that leaves a base finishes that forward, keeps it, then stops."""
    token, calls = CancellationToken(), []
    layers = len(backend.model.model.layers)
    hooks = _cancel_at_layer(backend, token, 0, calls)
    try:
        with pytest.raises(Cancelled):
            tiny_engine.infill(InfillRequest(**REQUEST, reuse_previous=True), token)
    finally:
        for hook in hooks:
            hook.remove()
    assert calls == list(range(layers)) and layers > 1  # the forward ran to its end, nothing after it
    assert backend.previous is not None and len(backend.previous.kept) == layers
    typed = dict(REQUEST, prefix=REQUEST["prefix"] + " +")
    assert tiny_engine.infill(InfillRequest(**typed, reuse_previous=True)).timings["reused_previous"]


def test_without_a_base_to_leave_a_cancelled_forward_stops_between_layers(tiny_engine, backend):
    token, calls = CancellationToken(), []
    hooks = _cancel_at_layer(backend, token, 0, calls)
    try:
        with pytest.raises(Cancelled):
            tiny_engine.infill(InfillRequest(**REQUEST), token)
    finally:
        for hook in hooks:
            hook.remove()
    assert calls == [0] and backend.previous is None


def test_a_request_cancelled_before_it_starts_leaves_no_base(tiny_engine, backend):
    token = CancellationToken()
    token.cancel()
    with pytest.raises(Cancelled):
        tiny_engine.infill(InfillRequest(**REQUEST, reuse_previous=True), token)
    assert backend.previous is None
