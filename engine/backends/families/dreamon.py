"""DreamOn: a Dream network whose canvas grows and shrinks while it denoises.

The network, weight names, shifted logits, tokenizer and infill layout are
Dream's (``engine.backends.families.dream``).  What differs is the length
control, from DreamOn's paper and its evaluation code (DreamLM/DreamOn,
``eval/generator.py``):

* ``<|expand|>`` (id 151667 in the released tokenizer's added_tokens.json)
  is an ordinary vocabulary entry.  When the sampler commits it, that position
  becomes two masks: the middle grows by one.
* ``<|delete|>`` is the paper's name for the end-of-text token
  ``<|endoftext|>`` (151643) written *into a masked position*: it is removed
  and the middle shrinks by one; every still-masked position after it is
  deleted with it.  DreamOn's training pads the middle with EOS exactly for this.
* The canvas starts with a few masks (4 in the evaluation) and can grow up to
  ``max_new_tokens`` positions; ``<|expand|>`` is forbidden once it is that
  long or the expansion budget (``max_new_tokens`` expansions) is spent.
* One position is committed per forward pass, the one whose predicted
  distribution has the lowest entropy (``alg="entropy"``), with the argmax
  token (temperature 0); the evaluation computes that entropy over the top-p
  (0.9) nucleus.  The loop itself is ``engine.backends.dreamon_backend``.

DreamOn checkpoints carry ``model_type`` ``"Dream"``; a directory is DreamOn when
its tokenizer has ``<|expand|>``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.backends.families.base import NativeFamily, SpecialIds, token_id
from engine.backends.families.dream import (
    MODEL_TYPE,
    dream_special_ids,
    max_positions,
    qwen2_config,
    qwen2_tokenizer,
)

EXPAND_TOKEN = "<|expand|>"


def special_ids(raw: dict[str, Any], tok: Any) -> SpecialIds:
    base = dream_special_ids(raw, tok)
    expand = token_id(tok, EXPAND_TOKEN)
    if expand is None:
        raise ValueError(f"DreamOn checkpoint without the {EXPAND_TOKEN} token")
    if base.filler is None:
        raise ValueError("DreamOn checkpoint without an end-of-text (delete) token")
    return SpecialIds(mask=base.mask, filler=base.filler, document_start=base.document_start,
                      document_end=base.document_end, extra={"expand": expand, "delete": base.filler})


def _has_expand_token(path: Path) -> bool:
    for name in ("added_tokens.json", "tokenizer_config.json", "tokenizer.json"):
        file = path / name
        if file.is_file():
            try:
                if EXPAND_TOKEN in file.read_text():
                    return True
            except OSError:
                continue
    return False


def _matches(raw: dict[str, Any], path: Path) -> bool:
    return raw.get("model_type") == MODEL_TYPE and _has_expand_token(path)


def _model_class():
    from transformers import Qwen2ForCausalLM

    return Qwen2ForCausalLM


FAMILY = NativeFamily(
    name="dreamon",
    shifted=True,
    model_class=_model_class,
    build_config=lambda raw: qwen2_config(raw, "dreamon"),
    key_mapping={},
    load_tokenizer=qwen2_tokenizer,
    special_ids=special_ids,
    matches=_matches,
    max_positions=max_positions,
    backend="dreamon",
)

