"""Tokenizer-aware windowing keeps the lines nearest the cursor."""
from __future__ import annotations

from transformers import AutoTokenizer

from engine.window import build_window, split_budget


def _tok(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_small_input_is_kept_whole(tiny_model_dir):
    tok = _tok(tiny_model_dir)
    w = build_window(tok, "def f(x):\n    return ", "\n\nprint(f(1))\n", 256, 16)
    assert tok.decode(w.prefix_ids) == "def f(x):\n    return "
    assert tok.decode(w.suffix_ids) == "\n\nprint(f(1))\n"
    assert not w.prefix_cut and not w.suffix_cut


def test_long_input_is_cut_at_line_boundaries_near_cursor(tiny_model_dir):
    tok = _tok(tiny_model_dir)
    prefix = "".join(f"line_{i} = {i}\n" for i in range(500)) + "x = "
    suffix = "\n" + "".join(f"after_{i} = {i}\n" for i in range(500))
    w = build_window(tok, prefix, suffix, 128, 16)
    assert len(w.prefix_ids) + len(w.suffix_ids) + 16 <= 128
    kept_prefix, kept_suffix = tok.decode(w.prefix_ids), tok.decode(w.suffix_ids)
    assert kept_prefix.endswith("line_499 = 499\nx = ") and prefix.endswith(kept_prefix)
    assert kept_prefix.startswith("line_")  # whole lines only
    assert kept_suffix.startswith("\nafter_0 = 0\n") and suffix.startswith(kept_suffix)
    assert kept_suffix.endswith("\n")
    assert w.prefix_cut and w.suffix_cut


def test_unused_suffix_budget_goes_to_prefix(tiny_model_dir):
    tok = _tok(tiny_model_dir)
    prefix = "".join(f"v{i} = {i}\n" for i in range(400))
    w = build_window(tok, prefix, "", 200, 8)
    assert len(w.prefix_ids) > split_budget(200, 8)[0] * 0.9
    assert len(w.prefix_ids) <= 192


def test_single_huge_line_is_cut_by_tokens(tiny_model_dir):
    tok = _tok(tiny_model_dir)
    w = build_window(tok, "x" * 200_000, "y" * 200_000, 100, 10)
    assert len(w.prefix_ids) > 0 and len(w.prefix_ids) + len(w.suffix_ids) <= 90
