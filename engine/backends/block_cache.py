"""The encoder's prompt KV cache, kept across requests and extended as the user types.

DiffusionGemma's encoder is causal, so the keys/values of prompt token ``i``
depend only on tokens ``0..i``: when the new prompt shares its first ``n``
tokens with a cached one, those ``n`` positions are reused exactly and only the
rest is encoded.  We store *full-length* keys/values for every layer (a
transformers sliding-window layer forgets old tokens, which would make cutting
back impossible) and build transformers ``DynamicCache`` views from them:

* an *encoder view* (batch 1, sliding layers holding the last ``window - 1``
  tokens and recording new ones) to encode the unseen tail, and
* a *decoder view* (batch B, same windowing) that the denoiser reads.

Both views match what ``generate`` itself would hold after encoding the prompt.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field

import torch

KV = tuple[torch.Tensor, torch.Tensor]  # (1, heads, T, head_dim) each


@dataclass
class PromptKV:
    """Keys/values for ``ids`` (one entry per layer)."""

    ids: list[int]
    layers: list[KV]

    def __len__(self) -> int:
        return len(self.ids)

    def truncated(self, n: int) -> PromptKV:
        if n >= len(self.ids):
            return self
        return PromptKV(self.ids[:n], [(k[:, :, :n], v[:, :, :n]) for k, v in self.layers])


@dataclass
class EncodeStats:
    reused_tokens: int = 0
    encoded_tokens: int = 0
    ms: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _fresh_cache(text_config):
    from transformers import DynamicCache

    return DynamicCache(config=text_config)


def build_view(kv: PromptKV, text_config, batch: int = 1, record: bool = False):
    """A ``DynamicCache`` over ``kv`` expanded to ``batch`` rows.

    ``record=True`` keeps sliding layers from dropping what the encoder appends,
    so the new tokens' keys can be read back (see ``PromptCache.encode``)."""
    cache = _fresh_cache(text_config)
    total = len(kv)
    for layer, (k, v) in zip(cache.layers, kv.layers):
        if batch > 1:
            k, v = k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1)
        if getattr(layer, "is_sliding", False):
            keep = max(int(layer.sliding_window) - 1, 0)
            k, v = k[:, :, -keep:] if keep else k[:, :, :0], v[:, :, -keep:] if keep else v[:, :, :0]
            layer.lazy_initialization(k, v)
            layer.cumulative_length = total
            if record:
                layer.activate_past_recording()
        else:
            layer.lazy_initialization(k, v)
        layer.keys, layer.values = k, v
    return cache


class PromptCache:
    """A few prompts' KV (an LRU, roughly one per open document).

    A request reuses the entry sharing the longest token prefix with its prompt;
    the result replaces that entry when it is clearly the same document (the
    user typed or edited near the cursor), otherwise it becomes a new entry so
    that two files with a common header do not evict each other."""

    def __init__(self, encoder, text_config, max_entries: int = 4) -> None:
        self.encoder = encoder
        self.text_config = text_config
        self.max_entries = max_entries
        self._entries: OrderedDict[int, PromptKV] = OrderedDict()
        self._next_key = 0

    def clear(self) -> None:
        self._entries.clear()

    def _best(self, ids: list[int]) -> tuple[int | None, int]:
        best_key, best_len = None, 0
        for key, entry in self._entries.items():
            n = common_prefix(entry.ids, ids)
            if n > best_len:
                best_key, best_len = key, n
        return best_key, best_len

    @torch.no_grad()
    def encode(self, ids: list[int], device, cancel=None) -> tuple[PromptKV, EncodeStats]:
        """KV for ``ids``, reusing the longest cached prefix; encodes only the rest."""
        t0 = time.perf_counter()
        key, reuse = self._best(ids)
        base = self._entries[key].truncated(reuse) if key is not None else None
        if base is not None and reuse == len(ids):
            kv = base
        else:
            if cancel is not None:
                cancel.raise_if_cancelled()
            kv = self._extend(base, ids, device)
        same_doc = key is not None and reuse >= max(32, len(self._entries[key]) // 2)
        if same_doc:
            self._entries[key] = kv
            self._entries.move_to_end(key)
        else:
            self._entries[self._next_key] = kv
            self._next_key += 1
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        stats = EncodeStats(reused_tokens=reuse, encoded_tokens=len(ids) - reuse,
                            ms=(time.perf_counter() - t0) * 1000.0)
        return kv, stats

    def _extend(self, base: PromptKV | None, ids: list[int], device) -> PromptKV:
        start = len(base) if base is not None else 0
        new = torch.tensor([ids[start:]], dtype=torch.long, device=device)
        if base is None:
            cache = _fresh_cache(self.text_config)
            for layer in cache.layers:
                if getattr(layer, "is_sliding", False):
                    layer.activate_past_recording()
        else:
            cache = build_view(base, self.text_config, batch=1, record=True)
        positions = torch.arange(start, len(ids), dtype=torch.int32, device=device).unsqueeze(0)
        self.encoder(input_ids=new, past_key_values=cache, position_ids=positions)
        n = new.shape[1]
        layers: list[KV] = []
        for i, layer in enumerate(cache.layers):
            k_new, v_new = layer.keys[:, :, -n:], layer.values[:, :, -n:]
            if base is not None:
                k_old, v_old = base.layers[i]
                k_new, v_new = torch.cat([k_old, k_new], dim=2), torch.cat([v_old, v_new], dim=2)
            layers.append((k_new, v_new))
        return PromptKV(list(ids), layers)
