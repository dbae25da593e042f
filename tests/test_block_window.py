"""The DiffusionGemma prompt window (``engine/backends/block_window.py``).

Regression: the window start used to move in 256-token steps whatever the
budget, so a budget under ~300 tokens kept almost nothing of the prefix.
"""
from __future__ import annotations

import pytest
from block_tiny import PREFIX, SUFFIX, backend, model_dir, stdlib_texts, tiny_tokenizer  # noqa: F401 - fixtures

from engine.backends.block_window import prefix_ids

LONG = "".join(stdlib_texts())[:40000]


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.mark.parametrize("budget", [16, 100, 200, 255, 256, 300, 1000, 4096])
def test_a_small_budget_keeps_most_of_the_prefix(tok, budget):
    """At least three quarters of the budget is prefix text when there is enough of it."""
    ids = prefix_ids(tok, LONG, budget, bos_id=2)
    assert ids[0] == 2
    assert 0.75 * (budget - 1) <= len(ids) - 1 <= budget - 1


@pytest.mark.parametrize("budget", [100, 300, 4096])
def test_the_window_start_moves_in_chunks_while_typing(tok, budget):
    """Typing one character at a time only appends tokens, except when a whole
    chunk of the window has to go: the cached prompt KV stays reusable."""
    text = LONG[:24000]
    typed = "        result = compute(value, other_value) + 1\n" * 3
    windows = [prefix_ids(tok, text + typed[:i], budget, bos_id=2) for i in range(len(typed) + 1)]
    moves = 0
    for before, after in zip(windows, windows[1:]):
        if after[1:9] != before[1:9]:
            moves += 1
        else:
            assert after[: len(before) - 2] == before[:-2]  # the last token or two may re-merge
    typed_tokens = len(tok(typed, add_special_tokens=False)["input_ids"])
    assert moves <= typed_tokens // max(1, min(256, (budget - 1) // 4)) + 1


def test_the_backend_fills_with_a_small_context(backend):
    """Through the engine: a 100-token context still sends the prefix near the cursor."""
    from engine.engine import Engine
    from engine.types import InfillRequest

    long_prefix = LONG[:20000] + PREFIX
    budget = backend._prompt_budget(InfillRequest(long_prefix, SUFFIX, context_tokens=100))
    seen = {}
    original = backend.cache.encode

    def spy(ids, device, cancel=None):
        seen["ids"] = list(ids)
        return original(ids, device, cancel)

    backend.cache.encode = spy
    try:
        Engine(backend).infill(InfillRequest(long_prefix, SUFFIX, context_tokens=100, max_new_tokens=4, steps=1))
    finally:
        backend.cache.encode = original
    assert 0.75 * (budget - 1) <= len(seen["ids"]) - 1 <= budget - 1
    assert backend.tokenizer.decode(seen["ids"]).endswith(PREFIX)
