"""The canvas stepper (engine.backends.encoder_cache) against transformers' own
ModernBERT forward, on the tiny on-disk model every engine test uses, in each
dtype the engine runs in on a CPU (float32, and bfloat16 as on CPUs with bf16
units: tests/numerics.py says how close each must be)."""
from __future__ import annotations

import copy

import pytest
import torch
from numerics import FLOAT32, assert_as_accurate, assert_same_computation, float_copy

from engine.backends import encoder_cache
from engine.backends.encoder_cache import CanvasStepper
from engine.cancellation import CancellationToken
from engine.types import InfillRequest

#: how much the parity model's attention weights are scaled: the tiny model's random initial
#: weights give attention a negligible share of the logits (a forward without rotary positions
#: matched transformers' to 2e-6), so spread scores (queries and keys x8) and a heavier
#: attention output (x32) make a wrong rotary, mask or window show, in float32 and in bfloat16
ATTENTION_SCALE = {"Wqkv": 8.0, "Wo": 32.0}


@pytest.fixture(scope="module")
def backend(dtype_engine):
    """The tiny model's backend in the module's dtype, its attention made to matter."""
    backend = copy.deepcopy(dtype_engine.backend)
    with torch.no_grad():
        for layer in backend.model.model.layers:
            for name, scale in ATTENTION_SCALE.items():
                getattr(layer.attn, name).weight.mul_(scale)
    return backend


@pytest.fixture(scope="module")
def truth_model(backend):
    """The backend's model with the same weights computed in float32 (the bf16 tests' truth)."""
    return float_copy(backend.model)


def assert_matches_transformers(got: torch.Tensor, expected: torch.Tensor, dtype: str, truth) -> None:
    """Our forward's logits against transformers' (``expected``): to float32 rounding, or
    in bf16 as accurate as transformers' own bf16 forward (``truth()``: the float32 logits)."""
    if dtype == "float32":
        torch.testing.assert_close(got, expected, **FLOAT32)
    else:
        assert got.dtype == expected.dtype == torch.bfloat16
        assert_as_accurate(got, expected, truth())


def _layout(length: int = 128, valid: int = 120, seed: int = 0,
            device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Random ids (the same on every device) and their attention mask, on ``device``."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 500, (1, length), generator=generator)
    mask = torch.ones(1, length, dtype=torch.long)
    mask[0, valid:] = 0
    return ids.to(device), mask.to(device)


def test_the_tiny_model_is_supported(backend):
    assert encoder_cache.supports(backend.model)
    assert not encoder_cache.supports(torch.nn.Linear(2, 2))


def test_a_full_forward_matches_transformers_with_padding(backend, dtype, truth_model):
    ids, mask = _layout(device=backend.device)
    expected = backend.canvas_logits(ids, 40, 72, mask)
    got = CanvasStepper(backend.model, 128, 120).full(ids, 40, 72)
    assert_matches_transformers(got, expected, dtype, lambda: CanvasStepper(truth_model, 128, 120).full(ids, 40, 72))


@pytest.mark.parametrize("valid", [256, 200])
def test_a_long_window_matches_transformers_with_and_without_padding(backend, dtype, truth_model, valid):
    """Longer than one chunk of a sliding layer's queries (the model's whole context),
    and with no padding (the full layers then run unmasked): the full forward is still
    transformers' own, and steps over one stretch or several on unchanged input give
    the full forward's logits."""
    ids, mask = _layout(length=256, valid=valid, seed=1, device=backend.device)
    expected = backend.canvas_logits(ids, 60, 190, mask)
    stepper = CanvasStepper(backend.model, 256, valid)
    full = stepper.full(ids, 60, 190)
    truth = lambda: CanvasStepper(truth_model, 256, valid).full(ids, 60, 190)  # noqa: E731
    assert_matches_transformers(full, expected, dtype, truth)
    assert_same_computation(stepper.step(ids, 50, 200, 60, 190), full, dtype)
    positions = torch.cat((torch.arange(5, 20), torch.arange(100, 120)))
    assert_same_computation(stepper.step_at(ids, positions)[:, 15:], full[:, 40:60], dtype)


@pytest.mark.parametrize("valid", [256, 200])
@pytest.mark.parametrize("kind", ["sliding_attention", "full_attention"])
@pytest.mark.parametrize("rows", [slice(0, 256), slice(120, 250), slice(3, 40)])
def test_banded_attention_is_the_masked_attention(backend, dtype, valid, kind, rows):
    """The chunked (sliding) and unmasked (full, no padding) attention against one
    masked call, with spread scores (every key weighs) so that a key lost or added at a band's edge shows."""
    stepper = CanvasStepper(backend.model, 256, valid)
    generator = torch.Generator().manual_seed(2)
    n = rows.stop - rows.start
    q = torch.randn(1, stepper.heads, n, stepper.head_dim, generator=generator).to(backend.device, backend.model.dtype)
    k, v = (torch.randn(1, stepper.heads, 256, stepper.head_dim, generator=generator).to(backend.device,
                                                                                           backend.model.dtype)
            for _ in range(2))
    mask = stepper._mask(kind)[:, :, rows]
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=stepper.head_dim ** -0.5)
    got = stepper._attention(q, k, v, encoder_cache._Attention(kind, rows, mask))
    real = slice(0, max(0, min(n, valid - rows.start)))  # query rows of padding: masked to nothing either way
    if dtype == "float32":
        torch.testing.assert_close(got[:, :, real], expected[:, :, real], rtol=1e-5, atol=1e-5)
    else:
        assert_same_computation(got[:, :, real], expected[:, :, real], dtype)


def test_a_step_on_unchanged_input_equals_the_full_forward(backend, dtype):
    ids, _ = _layout(device=backend.device)
    stepper = CanvasStepper(backend.model, 128, 120)
    full = stepper.full(ids, 40, 72)
    assert_same_computation(stepper.step(ids, 24, 88, 40, 72), full, dtype)


def test_a_step_recomputes_the_changed_canvas(backend):
    """The first layer's keys depend only on the tokens: after a step they must be
    exactly those of a fresh full forward over the changed input, and the
    canvas logits must follow the new tokens."""
    ids, _ = _layout(device=backend.device)
    stepper = CanvasStepper(backend.model, 128, 120)
    before = stepper.full(ids, 40, 72)
    changed = ids.clone()
    changed[0, 40:50] = torch.arange(100, 110)
    after = stepper.step(changed, 24, 88, 40, 72)
    fresh = CanvasStepper(backend.model, 128, 120)
    exact = fresh.full(changed, 40, 72)
    assert torch.equal(stepper.kept[0].keys, fresh.kept[0].keys)  # the same rows through the same ops
    assert not torch.allclose(after, before)
    # an approximation, but the step must land much nearer the exact logits than the stale ones
    assert (after - exact).abs().mean() < (before - exact).abs().mean()


def test_step_before_full_is_refused(backend):
    ids, _ = _layout(device=backend.device)
    with pytest.raises(RuntimeError):
        CanvasStepper(backend.model, 128, 120).step(ids, 0, 10, 0, 10)


def _middle(tiny_engine, refresh: int | None) -> tuple[str, int]:
    request = InfillRequest(prefix="def add(a, b):\n    return ", suffix="\n\nprint(add(1, 2))\n",
                            max_new_tokens=12, refresh=refresh, threshold=1.0)
    result = tiny_engine.infill(request, CancellationToken())
    return result.middle, result.forwards


def test_the_backend_reuses_the_context_when_asked(tiny_engine, monkeypatch):
    """refresh > 1 goes through the stepper (full, then steps); refresh 1 never does."""
    calls: list[str] = []
    original_full, original_step = CanvasStepper.full, CanvasStepper.step
    monkeypatch.setattr(CanvasStepper, "full", lambda self, *a: calls.append("full") or original_full(self, *a))
    monkeypatch.setattr(CanvasStepper, "step", lambda self, *a: calls.append("step") or original_step(self, *a))
    _, forwards = _middle(tiny_engine, refresh=4)
    assert calls[0] == "full" and len(calls) == forwards
    assert [i for i, c in enumerate(calls) if c == "full"] == list(range(0, forwards, 4))
    calls.clear()
    _, forwards = _middle(tiny_engine, refresh=1)
    assert calls == ["full"] * forwards


def test_a_cancelled_request_stops_between_layers(backend):
    """The token is checked before every layer: cancelling while the first layer
    runs stops the forward before the second."""
    from engine.errors import Cancelled

    ids, _ = _layout(device=backend.device)
    token = CancellationToken()
    ran: list[int] = []
    layers = backend.model.model.layers
    # the attention norm runs first in every layer: record it, and cancel while layer 0 runs
    hooks = [layer.attn_norm.register_forward_hook(lambda *a, i=i: ran.append(i)) for i, layer in enumerate(layers)]
    hooks.append(layers[0].attn_norm.register_forward_hook(lambda *a: token.cancel()))
    try:
        with pytest.raises(Cancelled):
            CanvasStepper(backend.model, 128, 120, token).full(ids, 40, 72)
    finally:
        for h in hooks:
            h.remove()
    assert len(layers) >= 2 and ran == [0]


def test_refresh_is_validated():
    with pytest.raises(ValueError, match="refresh"):
        InfillRequest(prefix="x", refresh=0)



def test_reusing_steps_recompute_the_canvas_and_its_neighbours(tiny_engine, monkeypatch):
    """With refresh > 1 every step between full forwards runs the canvas with
    masked_forward.MARGIN neighbours on each side, not the whole window."""
    from engine.backends import masked_forward

    regions: list[tuple[int, int]] = []
    original_step = CanvasStepper.step
    monkeypatch.setattr(CanvasStepper, "step",
                        lambda self, ids, lo, hi, *a: regions.append((lo, hi)) or original_step(self, ids, lo, hi, *a))
    _, forwards = _middle(tiny_engine, refresh=32)
    assert len(regions) == forwards - 1
    assert regions and all(hi - lo <= 12 + 2 * masked_forward.MARGIN for lo, hi in regions)
