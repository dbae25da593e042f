"""Builds the bundled model's tokenizer and architecture.

Shared by the training recipe and by the tests, which make tiny randomly
initialised models of exactly the same format so that every loader path runs
against real files on disk.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TypedDict

PAD, UNK, MASK, FILLER = "<pad>", "<unk>", "<mask>", "<eoi>"
SPECIAL_TOKENS = [PAD, UNK, MASK, FILLER]
#: Sidecar file with what the engine needs beyond config.json.
DIFFILL_META = "diffill.json"

class ModelDims(TypedDict):
    """The ModernBertConfig fields a size sets."""

    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int


SIZES: dict[str, ModelDims] = {
    # name: hidden, layers, heads, intermediate
    "test": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64},
    "tiny": {"hidden_size": 256, "num_hidden_layers": 6, "num_attention_heads": 4, "intermediate_size": 640},
    "small": {"hidden_size": 384, "num_hidden_layers": 8, "num_attention_heads": 6, "intermediate_size": 1024},
    # the device job's model: ~22.5M parameters, 45 MB in bf16 (three 15 MiB shards)
    "base": {"hidden_size": 384, "num_hidden_layers": 10, "num_attention_heads": 6, "intermediate_size": 1152},
}


def train_tokenizer(texts: Iterable[str], vocab_size: int):
    """Byte-level BPE (no unknown characters possible) with our special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def special_ids(tok) -> tuple[int, int, int]:
    """(mask, filler, pad) ids of a tokenizer made by :func:`train_tokenizer`."""
    ids = [tok.token_to_id(t) for t in (MASK, FILLER, PAD)]
    if any(i is None for i in ids):
        raise ValueError(f"tokenizer lacks one of the special tokens {MASK}, {FILLER}, {PAD}")
    mask_id, filler_id, pad_id = ids
    return mask_id, filler_id, pad_id


def wrap_tokenizer(tok):
    """A transformers fast tokenizer around a `tokenizers.Tokenizer`."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        unk_token=UNK,
        mask_token=MASK,
        additional_special_tokens=[FILLER],
        clean_up_tokenization_spaces=False,
    )


def build_config(size: str, vocab_size: int, context: int, pad_id: int):
    """ModernBERT with local attention (window 32) in most layers and RoPE theta 10k:
    the setting measured here to escape the unigram plateau on CPU-scale training."""
    from transformers import ModernBertConfig

    dims = SIZES[size]
    n = dims["num_hidden_layers"]
    layer_types = ["full_attention" if i % 3 == 2 or i == n - 1 else "sliding_attention" for i in range(n)]
    return ModernBertConfig(
        vocab_size=vocab_size,
        max_position_embeddings=context,
        local_attention=32,
        layer_types=layer_types,
        rope_parameters={
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
            "full_attention": {"rope_type": "default", "rope_theta": 10000.0},
        },
        pad_token_id=pad_id,
        bos_token_id=pad_id,
        eos_token_id=pad_id,
        cls_token_id=pad_id,
        sep_token_id=pad_id,
        tie_word_embeddings=True,
        **dims,
    )


def write_meta(out_dir: Path, context: int, extra: dict | None = None) -> None:
    meta = {"mask_token": MASK, "filler_token": FILLER, "train_context": context}
    meta.update(extra or {})
    (out_dir / DIFFILL_META).write_text(json.dumps(meta, indent=2) + "\n")


def make_random_model(out_dir: Path, texts: Iterable[str], size: str = "test",
                      vocab_size: int = 512, context: int = 256, seed: int = 0) -> Path:
    """Write a randomly initialised model + tokenizer directory (for tests).

    Its head is biased away from tokens that do not decode on their own (lone
    bytes of multi-byte characters): random weights would otherwise write mostly
    such bytes, which the server never shows (``lsp_server/postprocess/undecodable.py``),
    so every test middle would come out empty.  A trained model writes whole
    characters; the test model now does too."""
    import torch
    from transformers import ModernBertForMaskedLM

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = wrap_tokenizer(train_tokenizer(texts, vocab_size))
    torch.manual_seed(seed)
    config = build_config(size, len(tok), context, tok.pad_token_id)
    model = ModernBertForMaskedLM(config)
    undecodable = [i for i in range(len(tok)) if "\ufffd" in tok.decode([i])]
    if undecodable and model.decoder.bias is not None:
        with torch.no_grad():
            model.decoder.bias[undecodable] = -30.0
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    write_meta(out_dir, context)
    return out_dir
