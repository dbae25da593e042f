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

Entries are per document: a request replaces the entry of its own document
(found by shared content, not only by a shared first part, so that an edit near
the top of a file does not push another document out).
"""
from __future__ import annotations

import inspect
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


#: token n-gram length for telling documents apart
GRAM = 8
#: share of an entry's n-grams a prompt must contain to be the same document
SAME_DOCUMENT = 0.5


def cache_kwarg(module) -> str:
    """The keyword ``module.forward`` takes the KV cache under: transformers
    renamed ``past_key_values`` to ``cache`` (the old name warns from 5.24 and
    goes in 5.40); older releases with DiffusionGemma (5.23) only know the old one."""
    try:
        params = inspect.signature(module.forward).parameters
    except (TypeError, ValueError):
        return "past_key_values"
    return "cache" if "cache" in params else "past_key_values"


def grams(ids: list[int], n: int = GRAM) -> frozenset[tuple[int, ...]]:
    return frozenset(tuple(ids[i:i + n]) for i in range(max(len(ids) - n + 1, 0)))


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
    """A few prompts' KV (an LRU, one entry per open document).

    A request reuses the entry sharing the longest token prefix with its prompt.
    The result replaces the entry of the same document: the one it shares a
    long first part with (typing or editing near the cursor), or else the one
    whose token n-grams it mostly contains (an edit near the top of the file
    changes the first part but not the rest).  Only a new document adds an
    entry and may evict the least recently used one, so two files with a common
    header do not evict each other, and neither does a file and its older self."""

    def __init__(self, encoder, text_config, max_entries: int = 4) -> None:
        self.encoder = encoder
        self.text_config = text_config
        self.max_entries = max_entries
        self._entries: OrderedDict[int, PromptKV] = OrderedDict()
        self._grams: dict[int, frozenset] = {}  # filled only when needed (not per keystroke)
        self._next_key = 0
        self._kwarg = cache_kwarg(encoder)

    def clear(self) -> None:
        self._entries.clear()
        self._grams.clear()

    def __len__(self) -> int:
        return len(self._entries)

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
        self._store(self._document(ids, key, reuse), kv)
        stats = EncodeStats(reused_tokens=reuse, encoded_tokens=len(ids) - reuse,
                            ms=(time.perf_counter() - t0) * 1000.0)
        return kv, stats

    def _document(self, ids: list[int], key: int | None, reuse: int) -> int | None:
        """The entry holding an older version of this prompt's document, if any."""
        if key is not None and reuse >= max(32, len(self._entries[key]) // 2):
            return key
        mine = grams(ids)
        best, best_share = None, SAME_DOCUMENT
        for k, entry in self._entries.items():
            theirs = self._grams.get(k)
            if theirs is None:
                theirs = self._grams[k] = grams(entry.ids)
            share = len(mine & theirs) / max(len(theirs), 1)
            if share >= best_share:
                best, best_share = k, share
        return best

    def _store(self, key: int | None, kv: PromptKV) -> None:
        if key is None:
            key = self._next_key
            self._next_key += 1
        self._entries[key] = kv
        self._entries.move_to_end(key)
        self._grams.pop(key, None)
        while len(self._entries) > self.max_entries:
            old, _ = self._entries.popitem(last=False)
            self._grams.pop(old, None)

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
        self.encoder(input_ids=new, position_ids=positions, **{self._kwarg: cache})
        n = new.shape[1]
        layers: list[KV] = []
        for i, layer in enumerate(cache.layers):
            k_new, v_new = layer.keys[:, :, -n:], layer.values[:, :, -n:]
            if base is not None:
                k_old, v_old = base.layers[i]
                k_new, v_new = torch.cat([k_old, k_new], dim=2), torch.cat([v_old, v_new], dim=2)
            layers.append((k_new, v_new))
        return PromptKV(list(ids), layers)
