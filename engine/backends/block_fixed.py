"""A fixed-shape decoder view of the prompt KV, for torch.compile / CUDA graphs.

The plain view (``block_cache.build_view``) has key lengths that follow the
prompt length, so a compiled step would recompile for every keystroke.  Here
full-attention layers get the prompt padded up to a bucket (a multiple of
``BUCKET`` tokens) and sliding layers exactly ``window - 1`` slots (left-padded
when the prompt is shorter); explicit 4-D additive masks hide the padding.
The decoder then sees the same shapes for every prompt in a bucket.

We do not use transformers' ``StaticCache`` for this: on a prompt longer than
the sliding window its decoder logits differ from the dynamic cache that
``generate`` uses by default (measured on the tiny test model), while this view
matches it to float rounding (``tests/test_block_diffusion.py``).
"""
from __future__ import annotations

import torch

from engine.backends.block_cache import PromptKV, _fresh_cache

BUCKET = 512


def bucket_length(n: int, bucket: int = BUCKET) -> int:
    return max(bucket, -(-n // bucket) * bucket)


def _pad(t: torch.Tensor, length: int, left: bool) -> torch.Tensor:
    missing = length - t.shape[2]
    if missing <= 0:
        return t
    zeros = t.new_zeros(t.shape[0], t.shape[1], missing, t.shape[3])
    return torch.cat([zeros, t] if left else [t, zeros], dim=2)


def build_fixed_view(kv: PromptKV, text_config, batch: int, canvas: int, dtype: torch.dtype,
                     bucket: int = BUCKET):
    """(cache, masks): a ``DynamicCache`` with padded prompt keys and the
    ``decoder_attention_mask`` dict (per layer type, (1, 1, canvas, keys))."""
    cache = _fresh_cache(text_config)
    total = len(kv)
    full_len = bucket_length(total, bucket)
    lengths: dict[str, tuple[int, int, bool]] = {}  # type -> (slots, valid, left-padded)
    for layer, (k, v) in zip(cache.layers, kv.layers):
        if getattr(layer, "is_sliding", False):
            slots = max(int(layer.sliding_window) - 1, 1)
            k, v = k[:, :, -slots:], v[:, :, -slots:]
            valid = k.shape[2]
            k, v = _pad(k, slots, left=True), _pad(v, slots, left=True)
            lengths["sliding_attention"] = (slots, valid, True)
            layer.lazy_initialization(k, v)
            layer.cumulative_length = total
        else:
            k, v = _pad(k, full_len, left=False), _pad(v, full_len, left=False)
            lengths["full_attention"] = (full_len, total, False)
            layer.lazy_initialization(k, v)
        layer.keys = k.expand(batch, -1, -1, -1)
        layer.values = v.expand(batch, -1, -1, -1)
    masks = {}
    floor = torch.finfo(dtype).min
    for kind, (slots, valid, left) in lengths.items():
        ok = torch.ones(slots + canvas, dtype=torch.bool, device=kv.layers[0][0].device)
        if left:
            ok[: slots - valid] = False
        else:
            ok[valid:slots] = False
        mask = torch.zeros(1, 1, canvas, slots + canvas, dtype=dtype, device=ok.device)
        masks[kind] = mask.masked_fill(~ok, floor)
    return cache, masks
