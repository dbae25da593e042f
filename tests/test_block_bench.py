"""The DiffusionGemma GPU benchmark's model build (``engine/bench/gpu_block.py``).

Regression: the benchmark built the model on the device directly, so the
encoder's and the decoder's copies of every shared weight were both allocated
before transformers tied them (about 100 GB at full size: more than an 80 GB
card).  Here the same build runs on the CPU with the toy config, counting the
bytes of every tensor created.
"""
from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

pytest.importorskip("transformers.models.diffusion_gemma")

FACTORIES = {"empty", "empty_strided", "empty_like", "zeros", "ones", "full", "rand", "randn", "arange"}


class AllocatedBytes(TorchDispatchMode):
    """Bytes of the CPU tensors that factory ops create under this mode."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func.overloadpacket.__name__ in FACTORIES and isinstance(out, torch.Tensor) and out.device.type == "cpu":
            self.bytes += out.numel() * out.element_size()
        return out


def _distinct_parameter_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())  # parameters() skips shared ones


def test_the_bench_model_is_allocated_once_per_distinct_weight():
    from engine.bench.gpu_block import build_model

    with AllocatedBytes() as counted:
        model = build_model(tiny=True, device="cpu", dtype=torch.float32)
    distinct = _distinct_parameter_bytes(model)
    every_holder = sum(p.numel() * p.element_size() for _, p in model.named_parameters(remove_duplicate=False))
    assert every_holder > 1.8 * distinct  # the encoder really shares its weights with the decoder
    assert counted.bytes <= 1.1 * distinct, f"allocated {counted.bytes} bytes for {distinct} bytes of weights"


def test_the_bench_model_is_tied_initialised_and_runs():
    from transformers import DiffusionGemmaConfig, DiffusionGemmaForBlockDiffusion

    from engine.bench.gpu_block import SMALL_VISION, TINY_TEXT, build_model

    model = build_model(tiny=True, device="cpu", dtype=torch.float32)
    decoder, encoder = model.model.decoder, model.model.encoder.language_model
    assert model.lm_head.weight is decoder.embed_tokens.weight
    assert encoder.embed_tokens.weight is decoder.embed_tokens.weight
    assert encoder.layers[0].self_attn.q_proj.weight is decoder.layers[0].self_attn.q_proj.weight
    assert not any(t.is_meta for t in [*model.parameters(), *model.buffers()])
    assert all(torch.isfinite(p).all() for p in model.parameters())
    std = float(decoder.layers[0].self_attn.q_proj.weight.std())
    assert 0.5 * model.config.text_config.initializer_range < std < 2 * model.config.text_config.initializer_range

    config = DiffusionGemmaConfig(text_config=dict(TINY_TEXT), vision_config=SMALL_VISION, canvas_length=256)
    reference = DiffusionGemmaForBlockDiffusion._from_config(config, dtype=torch.float32)
    mine = dict(model.named_buffers())
    for name, buffer in reference.named_buffers():  # RoPE tables, embedding scales, layer scalars
        torch.testing.assert_close(mine[name], buffer)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([[2, 10, 11]]), decoder_input_ids=torch.randint(0, 100, (1, 256))).logits
    assert logits.shape == (1, 256, TINY_TEXT["vocab_size"]) and torch.isfinite(logits).all()
