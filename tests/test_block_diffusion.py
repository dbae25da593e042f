"""DiffusionGemma block-diffusion backend on a tiny randomly initialised model
(CPU; the tests on ``backend``/``fresh`` also on CUDA with ``--device cuda``).

The model has the real architecture (causal encoder + bidirectional MoE decoder
with sliding and full attention layers, self-conditioning) at toy size, saved
to disk with a byte-level BPE tokenizer so that ``load`` runs on real files.
"""
from __future__ import annotations

import pytest
import torch
from block_tiny import CANVAS, PREFIX, SETTINGS, SUFFIX, backend, fresh, model_dir  # noqa: F401 - fixtures

from engine.backends.block_cache import PromptCache, build_view, cache_kwarg
from engine.backends.block_canvas import build_layout, extract_middle
from engine.backends.block_sampler import SamplerSettings, entropy_bound_accept, token_entropy
from engine.cancellation import CancellationToken
from engine.engine import Engine
from engine.errors import Cancelled, ModelNotFoundError, UnsupportedModelError
from engine.types import InfillRequest

# -- loading -------------------------------------------------------------------

def test_load_describes_itself(backend, device):
    assert backend.name == "block-diffusion"
    assert backend.device == device and backend.dtype == "float32"
    assert backend.context_tokens > CANVAS
    assert backend.model.config.model_type == "diffusion_gemma"


def test_load_engine_routes_diffusion_gemma_here(model_dir):
    """The project loader picks this backend from config.model_type."""
    from engine import load_engine

    eng = load_engine(str(model_dir), device="cpu")
    assert eng.describe()["backend"] == "block-diffusion"
    assert eng.infill(InfillRequest(PREFIX, SUFFIX, max_new_tokens=4, steps=2, seed=0)).forwards >= 1


def test_load_errors_are_one_line(tmp_path):
    from engine.backends.block_loading import load_block as load

    with pytest.raises(ModelNotFoundError, match="local Hugging Face cache"):
        load("nobody/no-such-diffusion-model", device="cpu", allow_download=False)
    from transformers import BertConfig

    BertConfig(vocab_size=10, hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
               intermediate_size=8).save_pretrained(tmp_path)
    with pytest.raises(UnsupportedModelError, match="diffusion_gemma"):
        load(str(tmp_path), device="cpu")


def test_int8_on_cpu_and_fp8_refused(model_dir):
    """int8 = dynamic quantization of the Linear layers on CPU; fp8 needs a recent GPU."""
    from engine.backends.block_loading import load_block as load
    from engine.errors import DeviceError

    q = load(str(model_dir), device="cpu", dtype="int8")
    assert q.dtype == "int8" and "quantized" in type(q.model.lm_head).__module__
    res = Engine(q).infill(InfillRequest(prefix=PREFIX, suffix=SUFFIX, max_new_tokens=8, steps=2, seed=0))
    assert res.forwards >= 1
    with pytest.raises(DeviceError, match="fp8"):
        load(str(model_dir), device="cpu", dtype="fp8")
    with pytest.raises(DeviceError, match="unknown dtype"):
        load(str(model_dir), device="cpu", dtype="int3")


# -- sampler pieces --------------------------------------------------------------

def test_entropy_bound_accepts_confident_positions_first():
    """sum(entropy) - max(entropy) <= bound: both confident positions plus one
    uncertain one (the max is free), never two uncertain ones."""
    sure, unsure = [9.0, 0.0, 0.0], [0.0, 0.0, 0.0]
    scores = torch.tensor([[sure, unsure, sure, unsure]])
    accepted = entropy_bound_accept(token_entropy(scores), bound=0.01)[0]
    assert accepted[0] and accepted[2] and int(accepted.sum()) == 3


def test_extract_middle_cuts_at_end_and_suffix_overlap():
    assert extract_middle([5, 6, 1, 7], [9], {0, 1}) == [5, 6]
    assert extract_middle([5, 6, 9, 10], [9, 10, 11], {0, 1}) == [5, 6]
    assert extract_middle([5, 6, 9], [9, 10, 11], {0, 1}) == [5, 6, 9]  # one token is not an overlap


def test_stopping_is_judged_on_the_middle_only():
    """Pinned positions have zero entropy; they must not hide an unsettled middle."""
    from engine.backends.block_sampler import SpanStopper

    settings = SamplerSettings(stability_threshold=0, confidence_threshold=0.5)
    entropy = torch.tensor([[2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])  # middle = first position
    argmax = torch.zeros(1, 8, dtype=torch.long)
    span = torch.tensor([[True] + [False] * 7])
    assert SpanStopper(settings, None)(argmax, entropy).item()  # whole canvas: mean 0.25 -> stop
    assert not SpanStopper(settings, span)(argmax, entropy).item()  # middle: 2.0 -> go on
    stable = SpanStopper(SamplerSettings(stability_threshold=1, confidence_threshold=9.0), span)
    assert not stable(argmax, entropy).item()  # no history yet
    moved = argmax.clone()
    moved[0, 5] = 7  # a change outside the middle does not count
    assert stable(moved, entropy).item()


def test_layout_pins_end_of_text_only_when_the_suffix_is_complete():
    complete = build_layout([2, 4], [10, 11], 8, end_ids=[1], device="cpu")
    assert complete.pins.tokens[0, 2:5].tolist() == [10, 11, 1] and complete.pins.mask[0, 2:5].all()
    assert not complete.pins.mask[0, 5:].any() and not complete.pins.mask[0, :2].any()
    assert complete.span[1].tolist() == [True] * 4 + [False] * 4
    cut = build_layout([6], [10, 11, 12], 8, end_ids=[], device="cpu")
    assert cut.pins.tokens[0, 6:].tolist() == [10, 11] and cut.pins.mask[0, 6:].all()


# -- pinning and batching ----------------------------------------------------------

def test_pinned_suffix_never_changes(fresh):
    """Every step's canvas and argmax keep the suffix tokens at their true positions."""
    from engine.backends.block_window import build_window

    win = build_window(fresh.tokenizer, PREFIX, SUFFIX, prompt_budget=256, canvas=CANVAS, bos_id=fresh.bos_id)
    kv, _ = fresh.cache.encode(win.ids, fresh.device)
    lengths = [4, 8, 16]
    layout = build_layout(lengths, win.suffix_ids, CANVAS, end_ids=[fresh.eos_id], device=fresh.device)
    gen = torch.Generator(device=fresh.device).manual_seed(3)
    canvas = layout.pins.apply_to_canvas(torch.randint(0, fresh.vocab, (3, CANVAS), generator=gen,
                                                       device=fresh.device))
    pins = layout.pins
    steps = 0
    for state in fresh.denoise(kv, canvas, steps=6, pins=pins, span=layout.span, generator=gen):
        steps += 1
        assert torch.equal(state.canvas[pins.mask], pins.tokens[pins.mask])
        assert torch.equal(state.argmax[pins.mask], pins.tokens[pins.mask])
    assert steps >= 1
    for row, length in enumerate(lengths):  # suffix starts right after each middle
        n = min(len(win.suffix_ids), CANVAS - length)
        assert pins.tokens[row, length:length + n].tolist() == win.suffix_ids[:n]


def test_drafts_never_contain_pinned_suffix_changes(fresh):
    """Through the engine API: drafts are middles only, the suffix is untouched."""
    eng = Engine(fresh)
    drafts = list(eng.stream(InfillRequest(prefix=PREFIX, suffix=SUFFIX, language="python",
                                           max_new_tokens=16, seed=1)))
    assert drafts and drafts[-1].done and all(not d.done for d in drafts[:-1])
    assert [d.step for d in drafts[:-1]] == list(range(1, len(drafts)))


def test_candidate_batch_gives_one_result_per_request(fresh):
    eng = Engine(fresh)
    reqs = [InfillRequest(prefix=PREFIX, suffix=SUFFIX, language="python", max_new_tokens=n, seed=0)
            for n in (4, 16, 32)]
    results = [eng.infill(r) for r in reqs]
    assert len(results) == 3
    for r, req in zip(results, reqs):
        assert isinstance(r.middle, str)
        assert 1 <= r.timings["rounds"] <= 2 and r.timings["rows"] >= 1
        assert r.tokens <= req.max_new_tokens
        assert len(r.confidence) == r.tokens
        assert 1 <= r.timings["denoise_steps"] <= SETTINGS.steps  # the step cap holds over both rounds
        assert r.forwards == r.timings["denoise_steps"] + r.timings["extra_steps"] + r.timings["rescore_passes"]


def test_seeded_requests_are_reproducible(fresh):
    eng = Engine(fresh)
    req = InfillRequest(prefix=PREFIX, suffix=SUFFIX, max_new_tokens=16, seed=7)
    assert eng.infill(req).middle == eng.infill(req).middle


# -- prompt KV cache -------------------------------------------------------------------

def test_two_documents_keep_their_own_cache_entries(fresh):
    a = [fresh.bos_id] + list(range(10, 90))
    b = [fresh.bos_id] + list(range(100, 180))
    fresh.cache.encode(a, fresh.device)
    fresh.cache.encode(b, fresh.device)
    _, again = fresh.cache.encode(a + [5], fresh.device)
    assert again.reused_tokens == len(a) and again.encoded_tokens == 1


def _decoder_logits(backend, kv, canvas):
    view = build_view(kv, backend.text_config, batch=canvas.shape[0])
    pos = torch.arange(len(kv), len(kv) + CANVAS, dtype=torch.int32, device=canvas.device).unsqueeze(0)
    with torch.no_grad():
        return backend.model(decoder_input_ids=canvas, decoder_position_ids=pos,
                             **{cache_kwarg(backend.model): view}).logits


def test_incremental_cache_matches_fresh_encode(fresh):
    """Typing extends the cache; editing before the cursor cuts it back; both exact."""
    tok = fresh.tokenizer
    text = "import json\n\ndef load(path):\n    with open(path) as f:\n        return json.load(f)\n" * 2
    ids = [fresh.bos_id] + tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) > 20  # longer than the sliding window (8): exercises window trimming
    canvas = torch.randint(0, fresh.vocab, (2, CANVAS), generator=torch.Generator().manual_seed(0)).to(fresh.device)

    cache = fresh.cache
    cache.encode(ids[:10], fresh.device)
    kv_inc, stats = cache.encode(ids, fresh.device)  # extend
    assert stats.reused_tokens == 10 and stats.encoded_tokens == len(ids) - 10
    edited = ids[:15] + [ids[15] + 1] + ids[16:]
    kv_cut, stats_cut = cache.encode(edited, fresh.device)  # cut back at the edit
    assert stats_cut.reused_tokens == 15

    ref = PromptCache(fresh.model.model.encoder, fresh.text_config)
    kv_ref, _ = ref.encode(ids, fresh.device)
    kv_ref_cut, _ = ref.encode(edited, fresh.device)
    for a, b in zip(kv_inc.layers, kv_ref.layers):
        torch.testing.assert_close(a[0], b[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(_decoder_logits(fresh, kv_inc, canvas), _decoder_logits(fresh, kv_ref, canvas),
                               atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(_decoder_logits(fresh, kv_cut, canvas),
                               _decoder_logits(fresh, kv_ref_cut, canvas), atol=1e-4, rtol=1e-4)


def test_cache_matches_transformers_encoder(fresh):
    """Our decoder view equals the cache ``generate`` builds with one prefill."""
    from transformers import DynamicCache

    ids = list(range(4, 40))
    kv, _ = fresh.cache.encode(ids, fresh.device)
    hf = DynamicCache(config=fresh.model.config)
    with torch.no_grad():
        fresh.model.model.encoder(input_ids=torch.tensor([ids], device=fresh.device),
                                  **{cache_kwarg(fresh.model.model.encoder): hf})
    view = build_view(kv, fresh.text_config, batch=1)
    for mine, theirs in zip(view.layers, hf.layers):
        assert mine.keys.shape == theirs.keys.shape
        torch.testing.assert_close(mine.keys, theirs.keys, atol=1e-5, rtol=1e-5)
        assert mine.get_seq_length() == theirs.get_seq_length()


@pytest.mark.parametrize("prompt_len", [5, 40])  # shorter and longer than the sliding window
def test_fixed_shape_view_matches_plain_view(fresh, prompt_len):
    """Padded prompt KV + explicit masks (for compiled steps) = the plain view."""
    from engine.backends.block_fixed import build_fixed_view

    kv, _ = fresh.cache.encode(list(range(4, 4 + prompt_len)), fresh.device)
    canvas = torch.randint(0, fresh.vocab, (3, CANVAS), generator=torch.Generator().manual_seed(1)).to(fresh.device)
    view, masks = build_fixed_view(kv, fresh.text_config, 3, CANVAS, torch.float32, bucket=16)
    assert view.layers[-1].keys.shape[2] == -(-prompt_len // 16) * 16
    pos = torch.arange(prompt_len, prompt_len + CANVAS, dtype=torch.int32, device=fresh.device).unsqueeze(0)
    with torch.no_grad():
        fixed = fresh.model(decoder_input_ids=canvas, decoder_position_ids=pos, **{cache_kwarg(fresh.model): view},
                            decoder_attention_mask=masks).logits
    torch.testing.assert_close(fixed, _decoder_logits(fresh, kv, canvas), atol=1e-4, rtol=1e-4)


def test_fixed_shape_option_through_the_engine(fresh):
    fresh.options.fixed_shape = True
    try:
        res = Engine(fresh).infill(InfillRequest(prefix=PREFIX, suffix=SUFFIX, max_new_tokens=8, seed=0))
    finally:
        fresh.options.fixed_shape = False
    assert res.forwards >= 1


def test_typing_reuses_the_cache_through_the_engine(fresh):
    eng = Engine(fresh)
    first = eng.infill(InfillRequest(prefix=PREFIX, suffix=SUFFIX, max_new_tokens=8, seed=0))
    second = eng.infill(InfillRequest(prefix=PREFIX + "a + b", suffix=SUFFIX, max_new_tokens=8, seed=0))
    assert first.timings["reused_tokens"] == 0
    assert second.timings["reused_tokens"] > 0
    assert second.timings["encoded_tokens"] < second.timings["reused_tokens"]


# -- cancellation and the engine contract ------------------------------------------------

def test_cancel_before_start(fresh):
    token = CancellationToken()
    token.cancel()
    with pytest.raises(Cancelled):
        Engine(fresh).infill(InfillRequest(prefix=PREFIX, suffix=SUFFIX, seed=0), cancel=token)


def test_cancel_between_steps_stops_within_one_step(fresh):
    token = CancellationToken()
    calls = {"n": 0}
    original = fresh._decoder

    def counting(*args, **kwargs):
        calls["n"] += 1
        return original(*args, **kwargs)

    fresh._decoder = counting
    try:
        stream = Engine(fresh).stream(InfillRequest(prefix=PREFIX, suffix=SUFFIX, max_new_tokens=16,
                                                    steps=6, seed=0), cancel=token)
        first = next(stream)
        assert first.step == 1 and not first.done
        token.cancel()
        with pytest.raises(Cancelled):
            next(stream)
        assert calls["n"] == 1
    finally:
        fresh._decoder = original


def test_cancel_from_another_thread(fresh):
    import threading

    token = CancellationToken()
    threading.Timer(0.05, token.cancel).start()
    with pytest.raises(Cancelled):
        for _ in Engine(fresh).stream(InfillRequest(PREFIX, SUFFIX, max_new_tokens=16, steps=4000, seed=0),
                                      cancel=token):
            pass


def test_megabytes_of_text_are_windowed(fresh):
    from engine.errors import InputError

    big = "".join(f"value_{i} = {i}\n" for i in range(200_000))  # ~3 MB
    eng = Engine(fresh)
    res = eng.infill(InfillRequest(big + "x = ", "\n" + big, max_new_tokens=8, steps=2, seed=0))
    assert res.timings["prompt_tokens"] <= fresh.context_tokens
    with pytest.raises(InputError, match="both empty"):
        eng.infill(InfillRequest("", "", max_new_tokens=4))


@pytest.mark.parametrize("steps", [1, 3])
def test_finishes_within_step_budget_and_fixed_length(fresh, steps):
    res = Engine(fresh).infill(InfillRequest(PREFIX, SUFFIX, max_new_tokens=9, steps=steps, fixed_length=True,
                                             seed=0))
    assert res.forwards <= steps and res.timings["rows"] == 1 and res.tokens <= 9


def test_engine_contract(fresh):
    eng = Engine(fresh)
    desc = eng.describe()
    assert desc["backend"] == "block-diffusion" and desc["device"] == fresh.device
    req = InfillRequest(prefix=PREFIX, suffix=SUFFIX, language="python", max_new_tokens=8, steps=4, seed=2)
    drafts = list(eng.stream(req))
    result = eng.infill(req)
    last = drafts[-1]
    assert last.done and last.text == result.middle and last.confidence == result.confidence
    assert all(d.steps == 4 for d in drafts)
    assert all(0.0 <= c <= 1.0 for c in result.confidence)
    assert last.step == result.timings["denoise_steps"] and 1 <= last.step <= 4
    assert result.forwards == last.step + result.timings["extra_steps"] + result.timings["rescore_passes"]
    assert result.timings["total_ms"] > 0 and result.ms == result.timings["total_ms"]
    # empty suffix (end of file) and empty prefix (start of file) both work
    assert isinstance(eng.infill(InfillRequest(prefix=PREFIX, suffix="", seed=0)).middle, str)
    assert isinstance(eng.infill(InfillRequest(prefix="", suffix=SUFFIX, seed=0)).middle, str)


def test_prompt_mode_through_the_engine(fresh):
    fresh.mode = "prompt"
    drafts = list(Engine(fresh).stream(InfillRequest(prefix=PREFIX, suffix=SUFFIX, max_new_tokens=16, seed=0)))
    assert drafts[-1].done and isinstance(drafts[-1].text, str)
