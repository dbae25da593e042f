"""LLaDA: a LLaMA-shaped network with its own config keys and weight names.

Facts this module relies on (upstream: GSAI-ML's modeling_llada.py as copied
in NVlabs/Fast-dLLM, see tests/fixtures/families/README.md; checked by the
parity test):

* Network: ``block_type: "llama"`` blocks = RMSNorm -> q/k/v (no bias) ->
  RoPE (rotate-half, theta 500000) -> full attention -> ``attn_out``, then
  RMSNorm -> ``act(ff_proj(x)) * up_proj(x)`` -> ``ff_out``: exactly
  ``LlamaForCausalLM`` with ``gate_proj`` = ``ff_proj`` and ``down_proj`` =
  the block's ``ff_out``.  Final ``ln_f`` and a separate output matrix
  ``transformer.ff_out`` (``weight_tying: false``).  Features the 8B configs
  switch off (alibi, qkv bias, input embedding scaling, logit scaling, block
  groups, attention layer norm) are refused rather than silently ignored.
* Weight names: ``model.transformer.wte``, ``model.transformer.blocks.N.{attn_norm,
  q_proj,k_proj,v_proj,attn_out,ff_norm,ff_proj,up_proj,ff_out}``,
  ``model.transformer.ln_f``, ``model.transformer.ff_out`` (mapped below).
* Attention: bidirectional (upstream calls SDPA with ``is_causal=False``).
* Logits are **not** shifted: the prediction for position i is at position i
  (LLaDA was trained as a masked model from scratch).
* Tokens (8B): ``<|startoftext|>`` 126080 (BOS), ``<|endoftext|>`` 126081 (EOS
  and PAD), ``<|mdm_mask|>`` 126336 (``mask_token_id`` in config.json).  The
  tokenizer is a plain ``tokenizer.json`` (``PreTrainedTokenizerFast``).
* Context: ``max_sequence_length`` 4096.
* Infill format: BOS + prefix + canvas + suffix + EOS; an unknown-length middle
  ends with EOS (LLaDA's SFT pads answers with ``|EOS|``).
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
)

MODEL_TYPE = "llada"
_FIXED = {
    "block_type": "llama", "activation_type": "silu", "alibi": False, "rope": True,
    "include_bias": False, "include_qkv_bias": False, "input_emb_norm": False, "scale_logits": False,
    "weight_tying": False, "block_group_size": 1, "attention_layer_norm": False,
    "layer_norm_type": "rms", "layer_norm_with_affine": True, "bias_for_layer_norm": False,
    "multi_query_attention": None,
}

_BLOCK = r"^model\.transformer\.blocks\.(\d+)\."
_LAYER = r"model.layers.\1."
#: upstream weight name (regex) -> transformers' LlamaForCausalLM name
KEY_MAPPING = {
    r"^model\.transformer\.wte\.": "model.embed_tokens.",
    r"^model\.transformer\.ln_f\.": "model.norm.",
    r"^model\.transformer\.ff_out\.": "lm_head.",
    _BLOCK + r"attn_norm\.": _LAYER + "input_layernorm.",
    _BLOCK + r"q_proj\.": _LAYER + "self_attn.q_proj.",
    _BLOCK + r"k_proj\.": _LAYER + "self_attn.k_proj.",
    _BLOCK + r"v_proj\.": _LAYER + "self_attn.v_proj.",
    _BLOCK + r"attn_out\.": _LAYER + "self_attn.o_proj.",
    _BLOCK + r"ff_norm\.": _LAYER + "post_attention_layernorm.",
    _BLOCK + r"ff_proj\.": _LAYER + "mlp.gate_proj.",
    _BLOCK + r"up_proj\.": _LAYER + "mlp.up_proj.",
    _BLOCK + r"ff_out\.": _LAYER + "mlp.down_proj.",
}


def build_config(raw: dict[str, Any]):
    """transformers' own LlamaConfig from LLaDA's config.json keys."""
    from transformers import LlamaConfig

    refuse_unsupported(raw, _FIXED, "llada")
    d_model = int(require(raw, "d_model", "llada"))
    heads = int(require(raw, "n_heads", "llada"))
    mlp = raw.get("mlp_hidden_size") or int(raw.get("mlp_ratio", 4)) * d_model
    vocab = int(raw.get("embedding_size") or require(raw, "vocab_size", "llada"))
    return LlamaConfig(
        vocab_size=vocab,
        hidden_size=d_model,
        intermediate_size=int(mlp),
        num_hidden_layers=int(require(raw, "n_layers", "llada")),
        num_attention_heads=heads,
        num_key_value_heads=int(raw.get("n_kv_heads") or heads),
        head_dim=d_model // heads,
        max_position_embeddings=int(raw.get("max_sequence_length", 4096)),
        rms_norm_eps=float(raw.get("rms_norm_eps", 1e-5)),
        rope_parameters={"rope_type": "default", "rope_theta": float(raw.get("rope_theta", 10000.0))},
        tie_word_embeddings=False,
        attention_bias=False,
        mlp_bias=False,
        hidden_act="silu",
        use_cache=False,
        pad_token_id=first_int(raw.get("pad_token_id")),
        bos_token_id=first_int(raw.get("bos_token_id")),
        eos_token_id=first_int(raw.get("eos_token_id")),
    )


def load_tokenizer(path: str):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(path, local_files_only=True)


def special_ids(raw: dict[str, Any], tok: Any) -> SpecialIds:
    mask = first_int(raw.get("mask_token_id"), tok.mask_token_id)
    if mask is None:
        raise ValueError("LLaDA checkpoint without mask_token_id")
    eos = first_int(tok.eos_token_id, raw.get("eos_token_id"))
    bos = first_int(tok.bos_token_id, raw.get("bos_token_id"))
    return SpecialIds(mask=mask, filler=eos, document_start=bos, document_end=eos)


def _model_class():
    from transformers import LlamaForCausalLM

    return LlamaForCausalLM


def _matches(raw: dict[str, Any], path: Path) -> bool:
    return raw.get("model_type") == MODEL_TYPE


FAMILY = NativeFamily(
    name="llada",
    shifted=False,
    model_class=_model_class,
    build_config=build_config,
    key_mapping=KEY_MAPPING,
    load_tokenizer=load_tokenizer,
    special_ids=special_ids,
    matches=_matches,
    max_positions=lambda raw: int(raw.get("max_sequence_length", 4096)),
)
