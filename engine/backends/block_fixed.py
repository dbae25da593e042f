"""A fixed-shape decoder view of the prompt KV, for torch.compile / CUDA graphs.

The plain view (``block_cache.build_view``) has key lengths that follow the
prompt length, so a compiled step would recompile for every keystroke.  Here
full-attention layers get the prompt padded up to a bucket (a multiple of
``BUCKET`` tokens) and sliding layers exactly ``window - 1`` slots (left-padded
when the prompt is shorter); explicit 4-D additive masks hide the padding.

Shapes alone are not enough: a compiled graph also guards on strides, and a
slice of the stored full-length KV has strides that follow the prompt length.
So the prompt is *copied* into contiguous buffers that ``FixedShapeKV`` keeps
from one request to the next (same shapes, strides and addresses for every
prompt in a bucket); only a new bucket allocates new ones.

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


class FixedShapeKV:
    """Persistent padded copies of one prompt's KV (one set per bucket in use).

    Not thread-safe: the engine runs one request at a time."""

    def __init__(self, text_config, bucket: int = BUCKET) -> None:
        self.text_config = text_config
        self.bucket = bucket
        self._key: tuple | None = None
        self._buffers: list[tuple[torch.Tensor, torch.Tensor]] = []

    def _ensure(self, kv: PromptKV, full_len: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Buffers shaped for ``full_len``, allocated only when the bucket, dtype
        or device changes (freeing the previous bucket's: memory stays bounded)."""
        k0 = kv.layers[0][0]
        key = (full_len, k0.dtype, k0.device)
        if key != self._key:
            self._buffers = []
            for layer, (k, v) in zip(_fresh_cache(self.text_config).layers, kv.layers):
                slots = _sliding_slots(layer)
                n = slots if slots is not None else full_len
                shape = (1, k.shape[1], n, k.shape[3])
                self._buffers.append((k.new_zeros(shape), v.new_zeros((1, v.shape[1], n, v.shape[3]))))
            self._key = key
        return self._buffers

    def view(self, kv: PromptKV, batch: int, canvas: int, dtype: torch.dtype):
        """(cache, masks): a ``DynamicCache`` over the padded prompt keys and the
        ``decoder_attention_mask`` dict (per layer type, (1, 1, canvas, keys))."""
        cache = _fresh_cache(self.text_config)
        total = len(kv)
        full_len = bucket_length(total, self.bucket)
        buffers = self._ensure(kv, full_len)
        lengths: dict[str, tuple[int, int, bool]] = {}  # type -> (slots, valid, left-padded)
        for layer, (k, v), (kb, vb) in zip(cache.layers, kv.layers, buffers):
            slots = _sliding_slots(layer)
            if slots is not None:
                valid = min(total, slots)
                _fill(kb, k[:, :, total - valid:], left=True)
                _fill(vb, v[:, :, total - valid:], left=True)
                lengths["sliding_attention"] = (slots, valid, True)
                layer.lazy_initialization(kb, vb)
                layer.cumulative_length = total
            else:
                _fill(kb, k, left=False)
                _fill(vb, v, left=False)
                lengths["full_attention"] = (full_len, total, False)
                layer.lazy_initialization(kb, vb)
            layer.keys = kb.expand(batch, -1, -1, -1)
            layer.values = vb.expand(batch, -1, -1, -1)
        return cache, _masks(lengths, canvas, dtype, kv.layers[0][0].device)


def _sliding_slots(layer) -> int | None:
    """Key slots a sliding layer keeps (``window - 1``), None for full attention."""
    if getattr(layer, "is_sliding", False):
        return max(int(layer.sliding_window) - 1, 1)
    return None


def _fill(buffer: torch.Tensor, t: torch.Tensor, left: bool) -> None:
    """Copy ``t`` into ``buffer`` along the token axis, zeros elsewhere."""
    n = t.shape[2]
    size = buffer.shape[2]
    if left:
        buffer[:, :, : size - n].zero_()
        buffer[:, :, size - n:].copy_(t)
    else:
        buffer[:, :, :n].copy_(t)
        buffer[:, :, n:].zero_()


def _masks(lengths: dict[str, tuple[int, int, bool]], canvas: int, dtype: torch.dtype, device) -> dict:
    masks = {}
    floor = torch.finfo(dtype).min
    for kind, (slots, valid, left) in lengths.items():
        ok = torch.ones(slots + canvas, dtype=torch.bool, device=device)
        if left:
            ok[: slots - valid] = False
        else:
            ok[valid:slots] = False
        mask = torch.zeros(1, 1, canvas, slots + canvas, dtype=dtype, device=device)
        masks[kind] = mask.masked_fill(~ok, floor)
    return masks


def build_fixed_view(kv: PromptKV, text_config, batch: int, canvas: int, dtype: torch.dtype,
                     bucket: int = BUCKET):
    """One-off fixed-shape view (fresh buffers); the backend keeps a ``FixedShapeKV``."""
    return FixedShapeKV(text_config, bucket).view(kv, batch, canvas, dtype)
