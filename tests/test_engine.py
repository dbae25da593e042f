"""Engine API contract on a real (tiny, random) model loaded from disk."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading

import pytest
import torch

from engine import (
    CancellationToken,
    Cancelled,
    InfillRequest,
    InputError,
    ModelLoadError,
    ModelNotFoundError,
    UnsupportedModelError,
    load_engine,
)

PREFIX = "def add(a, b):\n    return "
SUFFIX = "\n\n\nprint(add(1, 2))\n"


def test_stream_yields_drafts_then_final_equal_to_infill(tiny_engine):
    req = InfillRequest(PREFIX, SUFFIX, max_new_tokens=12, steps=4)
    drafts = list(tiny_engine.stream(req))
    assert drafts[-1].done and all(not d.done for d in drafts[:-1])
    assert len(drafts) <= 4 + 1
    result = tiny_engine.infill(req)
    assert drafts[-1].text == result.middle
    assert 1 <= result.forwards <= 4 and result.tokens >= 1
    assert len(result.confidence) == result.tokens
    assert result.timings["total_ms"] > 0


def test_prefix_and_suffix_tokens_never_change(tiny_engine):
    backend = tiny_engine.backend
    seen = []
    original = backend._forward_for

    def spy(request, length, pad, start, stop, *rest):
        forward = original(request, length, pad, start, stop, *rest)
        real_call = type(forward).__call__

        class Recorded(type(forward)):
            def __call__(self, input_ids, step):
                seen.append((input_ids.clone(), start, stop))
                return real_call(self, input_ids, step)

        forward.__class__ = Recorded
        return forward

    backend._forward_for = spy
    try:
        tiny_engine.infill(InfillRequest(PREFIX, SUFFIX, max_new_tokens=10, steps=5, sampler="remask"))
    finally:
        backend._forward_for = original
    first, start, stop = seen[0]
    for ids, s, e in seen[1:]:
        assert (s, e) == (start, stop)
        assert torch.equal(ids[0, :start], first[0, :start])
        assert torch.equal(ids[0, stop:], first[0, stop:])


@pytest.mark.parametrize("sampler", ["threshold", "remask"])
@pytest.mark.parametrize("steps", [1, 3, 7])
def test_finishes_within_step_budget(tiny_engine, sampler, steps):
    res = tiny_engine.infill(InfillRequest(PREFIX, SUFFIX, max_new_tokens=14, steps=steps, sampler=sampler))
    assert res.forwards <= steps


def test_seeded_runs_are_deterministic(tiny_engine):
    req = InfillRequest(PREFIX, SUFFIX, max_new_tokens=16, seed=3)
    assert tiny_engine.infill(req).middle == tiny_engine.infill(req).middle


def test_fixed_length_fills_the_whole_canvas(tiny_engine):
    res = tiny_engine.infill(InfillRequest(PREFIX, SUFFIX, max_new_tokens=9, steps=9, sampler="remask",
                                           fixed_length=True))
    assert res.tokens == 9 and res.forwards == 9


def test_cancellation_stops_within_one_step(tiny_engine):
    token = CancellationToken()
    steps_run = 0
    with pytest.raises(Cancelled):
        for _draft in tiny_engine.stream(InfillRequest(PREFIX, SUFFIX, max_new_tokens=32, steps=32,
                                                      sampler="remask", fixed_length=True), cancel=token):
            steps_run += 1
            if steps_run == 2:
                token.cancel()
    assert steps_run == 2


def test_cancel_from_another_thread(tiny_engine):
    token = CancellationToken()
    threading.Timer(0.01, token.cancel).start()
    with pytest.raises(Cancelled):
        for _ in tiny_engine.stream(InfillRequest(PREFIX, SUFFIX, max_new_tokens=256, steps=256,
                                                  sampler="remask", fixed_length=True), cancel=token):
            pass


def test_empty_prefix_or_suffix_work_but_both_empty_is_an_error(tiny_engine):
    assert tiny_engine.infill(InfillRequest("", "print(1)\n", max_new_tokens=4)).forwards >= 1
    assert tiny_engine.infill(InfillRequest("x = ", "", max_new_tokens=4)).forwards >= 1
    with pytest.raises(InputError, match="both empty"):
        tiny_engine.infill(InfillRequest("", "", max_new_tokens=4))


def test_megabytes_of_text_are_windowed(tiny_engine):
    big = "".join(f"value_{i} = {i}\n" for i in range(200_000))  # ~3 MB
    res = tiny_engine.infill(InfillRequest(big + "x = ", "\n" + big, max_new_tokens=8))
    assert res.timings["prompt_tokens"] <= tiny_engine.context_tokens


def test_bad_requests_are_rejected():
    with pytest.raises(ValueError):
        InfillRequest("a", "b", max_new_tokens=0)
    with pytest.raises(ValueError):
        InfillRequest("a", "b", sampler="nope")  # type: ignore[arg-type]


def test_unknown_model_name(tmp_path):
    with pytest.raises(ModelNotFoundError, match="unknown model"):
        load_engine("no-such-model", device="cpu")
    with pytest.raises(ModelNotFoundError):
        load_engine(str(tmp_path / "missing"), device="cpu")


def test_hub_id_not_in_cache_is_not_downloaded(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelNotFoundError, match="local Hugging Face cache"):
        load_engine("someone/some-model", device="cpu")


def test_corrupt_and_missing_weights(tiny_model_dir, tmp_path):
    bad = tmp_path / "corrupt"
    shutil.copytree(tiny_model_dir, bad)
    for f in bad.glob("*.safetensors"):
        f.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ModelLoadError):
        load_engine(str(bad), device="cpu")
    missing = tmp_path / "missing-weights"
    shutil.copytree(tiny_model_dir, missing)
    for f in missing.glob("*.safetensors"):
        f.unlink()
    with pytest.raises(ModelLoadError):
        load_engine(str(missing), device="cpu")


def test_model_without_masked_lm_head(tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    out = tmp_path / "gpt2"
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=512)).save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(out)
    with pytest.raises(UnsupportedModelError, match="masked-LM"):
        load_engine(str(out), device="cpu")


def test_offline_loading_in_a_fresh_process(tiny_model_dir):
    code = ("from engine import load_engine, InfillRequest;"
            f"e = load_engine({str(tiny_model_dir)!r}, device='cpu');"
            "print(e.infill(InfillRequest('x = ', '\\n', max_new_tokens=4)).forwards)")
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert int(proc.stdout.strip().splitlines()[-1]) >= 1


def test_prompts_are_padded_to_few_shapes_without_changing_the_middle(tiny_engine):
    """Padding (attention-masked) bounds the per-shape kernel caches that grow the
    server's memory with every new prompt length; it must not change results."""
    backend = tiny_engine.backend
    assert backend.shape_bucket == 64
    lengths = {backend.padded_length(n) for n in range(1, backend.info.max_positions + 1)}
    assert len(lengths) <= -(-backend.info.max_positions // 64)
    assert all(backend.padded_length(n) >= n for n in range(1, 600))
    text = "def area(w, h):\n    return w * h\n\n\ndef perimeter(w, h):\n    return 2 * (w + h)\n" * 3
    try:
        for cut in range(20, len(text) - 20, 37):
            request = InfillRequest(prefix=text[:cut], suffix=text[cut:], max_new_tokens=8, seed=1)
            backend.shape_bucket = 64
            padded = tiny_engine.infill(request).middle
            backend.shape_bucket = 1
            assert tiny_engine.infill(request).middle == padded
    finally:
        backend.shape_bucket = 64


def test_models_load_without_kernels_from_the_hub(tiny_model_dir, monkeypatch):
    """transformers swaps layers for kernels fetched from the Hub unless told not to:
    every load says use_kernels=False (nothing is fetched that the user did not ask for)."""
    from transformers import AutoModelForMaskedLM

    seen: list[dict] = []
    real = AutoModelForMaskedLM.from_pretrained.__func__

    def spy(cls, path, **kwargs):
        seen.append(kwargs)
        return real(cls, path, **kwargs)

    monkeypatch.setattr(AutoModelForMaskedLM, "from_pretrained", classmethod(spy))
    load_engine(str(tiny_model_dir), device="cpu", dtype="float32")
    assert seen and all(k.get("use_kernels") is False for k in seen)
