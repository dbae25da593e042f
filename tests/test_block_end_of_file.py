"""End of file in the DiffusionGemma backend.

Regression: with an empty or blank suffix, end-of-text used to be pinned right
after each candidate length, so the model had to finish the file inside the
middle's length.
"""
from __future__ import annotations

import pytest
from block_tiny import PREFIX, SUFFIX, backend, fresh, model_dir  # noqa: F401 - fixtures

from engine.engine import Engine
from engine.types import InfillRequest


def _spy_denoise(backend, calls: list):
    original = backend.denoise

    def spy(kv, canvas, **kwargs):
        calls.append(kwargs)
        return original(kv, canvas, **kwargs)

    return original, spy


@pytest.mark.parametrize("suffix", ["", "\n", "\n\n  \n"])
def test_end_of_file_does_not_force_the_middle_to_end(fresh, suffix):
    """Nothing after the cursor: no end-of-text (or anything else) is pinned
    inside the canvas, and the one row spans the whole budget."""
    calls: list = []
    original, fresh.denoise = _spy_denoise(fresh, calls)
    try:
        res = Engine(fresh).infill(InfillRequest(PREFIX, suffix, max_new_tokens=12, steps=3, seed=0))
    finally:
        fresh.denoise = original
    assert calls
    for kwargs in calls:
        pins = kwargs.get("pins")
        assert pins is None or not bool(pins.mask.any()), "a token is pinned at the end of the file"
        assert kwargs["span"].sum(-1).tolist() == [12] * kwargs["span"].shape[0]
    assert res.tokens <= 12


def test_a_real_suffix_is_still_pinned_with_end_of_text(fresh):
    calls: list = []
    original, fresh.denoise = _spy_denoise(fresh, calls)
    try:
        Engine(fresh).infill(InfillRequest(PREFIX, SUFFIX, max_new_tokens=12, steps=3, seed=0))
    finally:
        fresh.denoise = original
    pins = calls[0]["pins"]
    suffix = fresh.tokenizer(SUFFIX, add_special_tokens=False)["input_ids"]
    n = len(suffix)
    checked = 0
    for row, length in enumerate(calls[0]["span"].sum(-1).tolist()):
        if length + n < fresh.canvas:  # longer rows hold only the start of the suffix
            assert pins.tokens[row, length:length + n].tolist() == suffix
            assert int(pins.tokens[row, length + n]) == fresh.eos_id
            checked += 1
    assert checked
