"""Open-dCoder: Qwen2.5-Coder-0.5B continued as a masked diffusion model.

Facts this module relies on (upstream: pengzhangzhi/Open-dLLM, veomni's
``models/transformers/qwen2``; checked by the parity test):

* Network: a plain ``Qwen2ForCausalLM`` checkpoint (``model_type`` ``"qwen2"``,
  Qwen2 weight names, tied input/output embeddings as in Qwen2.5-Coder-0.5B),
  run with ``is_causal=False`` and no attention mask: full attention.
* Logits are **shifted** like Dream's (its sampler shifts them "to predict the
  next token, aligning with training").
* Tokens: Qwen2.5's ``<|endoftext|>`` (EOS and PAD); the mask token is the
  tokenizer's ``mask_token`` (added by Open-dLLM; its evaluation refuses a
  tokenizer without one).  No BOS.
* Infill format (Open-dLLM ``eval/eval_infill``): prefix + canvas + suffix,
  nothing around them.  Open-dCoder was only pretrained (no answer padding),
  so the unknown-length end uses ``<|endoftext|>`` as filler, a token it saw
  between documents, not one it was trained to pad with; its published infill
  numbers use a fixed canvas length.
* Context: trained on 4096-token sequences (Open-dLLM
  ``configs/pretrain/qwen2_5_coder_500M.yaml``, ``max_seq_len``).
* Because its config is an ordinary Qwen2 one, a directory is recognised as
  Open-dCoder only through the catalog (``diffill models pull open-dcoder-0.5b``)
  or a ``diffill.json`` with ``{"family": "open-dcoder"}``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.backends.families.base import NativeFamily, SpecialIds, first_int
from engine.backends.families.dream import qwen2_config, qwen2_tokenizer

#: sequence length of Open-dCoder's pretraining (see module doc)
TRAINED_CONTEXT = 4096


def special_ids(raw: dict[str, Any], tok: Any) -> SpecialIds:
    mask = first_int(tok.mask_token_id, raw.get("mask_token_id"))
    if mask is None:
        raise ValueError("Open-dCoder tokenizer without a mask token")
    eos = first_int(tok.eos_token_id, raw.get("eos_token_id"))
    return SpecialIds(mask=mask, filler=eos)


def _model_class():
    from transformers import Qwen2ForCausalLM

    return Qwen2ForCausalLM


def _matches(raw: dict[str, Any], path: Path) -> bool:
    return False  # see module doc: only by catalog or diffill.json


FAMILY = NativeFamily(
    name="open-dcoder",
    shifted=True,
    model_class=_model_class,
    build_config=lambda raw: qwen2_config(raw, "open-dcoder"),
    key_mapping={},
    load_tokenizer=qwen2_tokenizer,
    special_ids=special_ids,
    matches=_matches,
    max_positions=lambda raw: min(int(raw.get("max_position_embeddings", TRAINED_CONTEXT)), TRAINED_CONTEXT),
)
