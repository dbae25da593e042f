"""The DiffusionGemma prompt KV cache: one entry per document.

Regression: an edit near the top of a file (or the window start moving by a
chunk) shares little of the cached prompt's first part, so it used to become a
new entry and evict another document's entry while the stale one stayed.
"""
from __future__ import annotations

import warnings

import torch
from block_tiny import PREFIX, SUFFIX, backend, fresh, model_dir  # noqa: F401 - fixtures

from engine.backends.block_cache import PromptCache
from engine.engine import Engine
from engine.types import InfillRequest


def _cache(backend, entries: int) -> PromptCache:
    return PromptCache(backend.model.model.encoder, backend.text_config, max_entries=entries)


def _doc(seed: int, n: int = 120) -> list[int]:
    """BOS + ``n`` random tokens: documents with different seeds share no n-grams."""
    gen = torch.Generator().manual_seed(seed)
    return [2] + torch.randint(4, 300, (n,), generator=gen).tolist()


def test_an_edit_near_the_top_replaces_its_own_entry(backend):
    cache = _cache(backend, 2)
    a, b = _doc(0), _doc(1)
    cache.encode(b, backend.device)
    cache.encode(a, backend.device)
    edited = a[:3] + [a[3] + 1] + a[4:]  # the user changed an import at the top of A
    cache.encode(edited, backend.device)
    _, stats = cache.encode(b, backend.device)  # B was not pushed out by A's newer self
    assert stats.reused_tokens == len(b) and stats.encoded_tokens == 0


def test_a_moved_window_start_replaces_its_own_entry(backend):
    cache = _cache(backend, 2)
    a, b = _doc(0, 200), _doc(1)
    cache.encode(b, backend.device)
    cache.encode(a, backend.device)
    cache.encode([2] + a[1 + 50:] + [9, 9, 9], backend.device)  # 50 tokens left the window, 3 were typed
    _, stats = cache.encode(b, backend.device)
    assert stats.reused_tokens == len(b)


def test_documents_with_a_common_header_keep_their_own_entries(backend):
    cache = _cache(backend, 4)
    header = _doc(5, 40)
    a, b = header + _doc(0)[1:], header + _doc(1)[1:]
    cache.encode(a, backend.device)
    _, stats = cache.encode(b, backend.device)
    assert stats.reused_tokens == len(header)
    for doc in (a, b):  # neither replaced the other
        _, again = cache.encode(doc, backend.device)
        assert again.reused_tokens == len(doc)


def test_no_deprecated_cache_argument(fresh):
    """transformers 5.24 renamed ``past_key_values`` to ``cache`` (removed in 5.40)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Engine(fresh).infill(InfillRequest(PREFIX, SUFFIX, max_new_tokens=8, steps=2, seed=0))
    assert not [w for w in caught if "past_key_values" in str(w.message)]
