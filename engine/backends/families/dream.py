"""Dream, Dream-Coder and DiffuCoder: Qwen2 networks run with full attention.

Facts this module relies on (checked against the upstream code named in
tests/fixtures/families/README.md, and by the parity tests):

* Network: Qwen2 exactly (q/k/v projections with bias, o_proj without, SwiGLU
  MLP, RMSNorm, RoPE), upstream ``model_type`` ``"Dream"``; weight names are
  Qwen2's (``model.layers.N.self_attn.q_proj.weight``, ``lm_head.weight``), so
  no renaming.  ``tie_word_embeddings`` is false in the released 7B configs.
* Attention: bidirectional (upstream hard-codes ``is_causal=False``); no
  attention mask is needed for one unpadded sequence.
* Logits are **shifted**: Dream was adapted from an autoregressive Qwen2.5, and
  its generation code takes the prediction for position i from the logits at
  i-1 (``torch.cat([logits[:, :1], logits[:, :-1]], 1)``); the first position
  reuses its own logits.
* Tokens (7B checkpoints): ``<|endoftext|>`` 151643 is EOS and PAD; Dream adds
  ``<|beginoftext|>`` 151665 (BOS) and ``<|mask|>`` 151666 (``mask_token_id``
  in config.json).  The embedding has 152064 rows, more than the tokenizer has
  tokens.  The tokenizer is Qwen2's byte-level BPE (vocab.json + merges.txt);
  the repository's ``tokenization_dream.py`` is a copy of it and is not run.
* Context: 2048 tokens, prompt and answer together (Dream's and DreamOn's
  READMEs), although config.json declares up to 131072 RoPE positions.
* Infill format: ``<|beginoftext|>`` + prefix + canvas + suffix +
  ``<|endoftext|>`` (the layout DreamOn's evaluation builds); an unknown-length
  middle ends with ``<|endoftext|>``: Dream-Coder's and DiffuCoder's SFT pad
  answers with EOS, which is what the diffill filler is.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.backends.families.base import (
    NativeFamily,
    SpecialIds,
    first_int,
    refuse_unsupported,
    require,
    token_id,
)

MODEL_TYPE = "Dream"
#: config switches whose other values this network does not implement
_FIXED = {"use_sliding_window": False, "rope_scaling": None, "hidden_act": "silu"}


def qwen2_config(raw: dict[str, Any], family: str):
    """transformers' own Qwen2Config from a Dream/Qwen2-style config.json."""
    from transformers import Qwen2Config

    refuse_unsupported(raw, _FIXED, family)
    layers = int(require(raw, "num_hidden_layers", family))
    return Qwen2Config(
        vocab_size=int(require(raw, "vocab_size", family)),
        hidden_size=int(require(raw, "hidden_size", family)),
        intermediate_size=int(require(raw, "intermediate_size", family)),
        num_hidden_layers=layers,
        num_attention_heads=int(require(raw, "num_attention_heads", family)),
        num_key_value_heads=int(raw.get("num_key_value_heads") or raw["num_attention_heads"]),
        max_position_embeddings=int(raw.get("max_position_embeddings", 32768)),
        rms_norm_eps=float(raw.get("rms_norm_eps", 1e-6)),
        rope_parameters={"rope_type": "default", "rope_theta": float(raw.get("rope_theta", 10000.0))},
        tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
        attention_dropout=0.0,
        use_sliding_window=False,
        max_window_layers=layers,
        use_cache=False,
        pad_token_id=first_int(raw.get("pad_token_id")),
        bos_token_id=first_int(raw.get("bos_token_id")),
        eos_token_id=first_int(raw.get("eos_token_id")),
    )


def qwen2_tokenizer(path: str):
    """Qwen2's byte-level BPE from vocab.json + merges.txt (tokenizer.json when present);
    the special tokens come from tokenizer_config.json, ``auto_map`` is ignored."""
    from transformers import Qwen2Tokenizer

    return Qwen2Tokenizer.from_pretrained(path, local_files_only=True)


def dream_special_ids(raw: dict[str, Any], tok: Any) -> SpecialIds:
    mask = first_int(raw.get("mask_token_id"), tok.mask_token_id)
    if mask is None:
        raise ValueError("Dream checkpoint without a mask token (mask_token_id / <|mask|>)")
    eos = first_int(tok.eos_token_id, raw.get("eos_token_id"))
    bos = first_int(tok.bos_token_id, token_id(tok, "<|beginoftext|>"))
    return SpecialIds(mask=mask, filler=eos, document_start=bos, document_end=eos)


#: trained context of Dream models (see module doc)
TRAINED_CONTEXT = 2048


def max_positions(raw: dict[str, Any]) -> int:
    return min(int(raw.get("max_position_embeddings", TRAINED_CONTEXT)), TRAINED_CONTEXT)


def _model_class():
    from transformers import Qwen2ForCausalLM

    return Qwen2ForCausalLM


def _matches(raw: dict[str, Any], path: Path) -> bool:
    return raw.get("model_type") == MODEL_TYPE


FAMILY = NativeFamily(
    name="dream",
    shifted=True,
    model_class=_model_class,
    build_config=lambda raw: qwen2_config(raw, "dream"),
    key_mapping={},
    load_tokenizer=qwen2_tokenizer,
    special_ids=dream_special_ids,
    matches=_matches,
    max_positions=max_positions,
)
