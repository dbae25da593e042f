"""The fixed-shape (compilable) decoder path of the DiffusionGemma backend.

Regression: the padded prompt KV used to be a slice of the stored full-length
KV, whose strides follow the prompt length, so ``torch.compile(dynamic=False)``
traced a new graph for every keystroke and fell back to eager at its
recompile limit.  Here dynamo runs with a counting backend (the same guards as
the compiled path's, without compiling kernels), on the CPU or with ``--device cuda``.
"""
from __future__ import annotations

import pytest
import torch
from block_tiny import PREFIX, SETTINGS, SUFFIX, model_dir  # noqa: F401 - fixture

from engine.engine import Engine
from engine.types import InfillRequest


def _backend(model_dir, device: str, *, fixed_shape: bool):
    from engine.backends.block_loading import load_block as load

    b = load(str(model_dir), device=device, dtype="float32")
    b.options.sampler = SETTINGS
    b.options.fixed_shape = fixed_shape
    return b


def test_typing_does_not_recompile_the_fixed_shape_step(model_dir, device):
    """Five keystrokes (five prompt lengths, one bucket): no graph after the first request."""
    from torch._dynamo.testing import CompileCounter

    torch._dynamo.reset()
    backend = _backend(model_dir, device, fixed_shape=True)
    counter = CompileCounter()
    backend._decoder = torch.compile(backend.model, backend=counter, dynamic=False)
    eng = Engine(backend)
    frames = []
    try:
        for typed in ["a", "a +", "a + b", "a + b *", "a + b * 2"]:
            eng.infill(InfillRequest(PREFIX + typed, SUFFIX, max_new_tokens=8, steps=3, seed=0))
            frames.append(counter.frame_count)
    finally:
        torch._dynamo.reset()
    assert frames[0] >= 1
    assert frames[1:] == [frames[0]] * 4, f"recompiled while typing: graphs after each request {frames}"


def test_the_padded_prompt_keeps_its_buffers_across_prompts(model_dir, device):
    """Same storage, shape and strides for every prompt in a bucket."""
    from engine.backends.block_fixed import FixedShapeKV

    backend = _backend(model_dir, device, fixed_shape=True)
    fixed = FixedShapeKV(backend.text_config, bucket=64)
    seen = []
    for n in (5, 23, 40):
        kv, _ = backend.cache.encode(list(range(4, 4 + n)), device)
        view, _ = fixed.view(kv, 3, 32, torch.float32)
        seen.append([(layer.keys.data_ptr(), layer.keys.shape, layer.keys.stride()) for layer in view.layers])
    assert seen[0] == seen[1] == seen[2]


@pytest.mark.parametrize("seed", [0, 3, 11])
def test_fixed_shape_run_equals_the_plain_run(model_dir, device, seed):
    """A whole request, drafts included: the padded path gives the same tokens."""
    plain = _backend(model_dir, device, fixed_shape=False)
    fixed = _backend(model_dir, device, fixed_shape=True)
    req = InfillRequest(PREFIX, SUFFIX, language="python", max_new_tokens=16, steps=6, seed=seed)
    a = [(d.step, d.text) for d in Engine(plain).stream(req)]
    b = [(d.step, d.text) for d in Engine(fixed).stream(req)]
    assert a == b
