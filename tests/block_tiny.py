"""A tiny randomly initialised DiffusionGemma on disk, shared by the block-diffusion tests.

It has the real architecture (causal encoder + bidirectional MoE decoder with
sliding and full attention layers, self-conditioning) at toy size, saved with a
byte-level BPE tokenizer so that ``load`` runs on real files.  Import the
fixtures (``model_dir``, ``backend``, ``fresh``) into a test module to use them;
``backend`` and ``fresh`` follow ``--device`` (tests/conftest.py).
"""
from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest
import torch

from engine.backends.block_sampler import SamplerSettings

CANVAS = 32
LOGIT_SCALE = 30.0
SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>"]  # ids 0..3 = DiffusionGemma's pad/eos/bos defaults
SETTINGS = SamplerSettings(steps=6, t_min=0.4, t_max=0.8, entropy_bound=0.1, stability_threshold=1,
                           confidence_threshold=0.005)
PREFIX = "def add(a, b):\n    total = "
SUFFIX = "\n    return total\n\nprint(add(1, 2))\n"


def stdlib_texts() -> list[str]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    return [f.read_text(encoding="utf-8", errors="replace") for f in sorted((stdlib / "json").glob("*.py"))]


def tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(stdlib_texts(), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>",
                                   bos_token="<bos>", unk_token="<unk>", clean_up_tokenization_spaces=False)


def tiny_config(vocab: int, canvas: int = CANVAS, layers: int = 3, sliding_window: int = 8):
    """Toy dimensions; the last layer is full attention, the others sliding."""
    from transformers import DiffusionGemmaConfig

    return DiffusionGemmaConfig(
        text_config=dict(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=16, global_head_dim=16,
                         sliding_window=sliding_window, num_experts=4, top_k_experts=2, moe_intermediate_size=16,
                         max_position_embeddings=1024,
                         layer_types=["sliding_attention"] * (layers - 1) + ["full_attention"]),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           num_key_value_heads=2, head_dim=8),
        canvas_length=canvas,
    )


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    from transformers import DiffusionGemmaForBlockDiffusion

    out = tmp_path_factory.mktemp("tiny-diffusion-gemma")
    tok = tiny_tokenizer()
    torch.manual_seed(0)
    model = DiffusionGemmaForBlockDiffusion(tiny_config(len(tok))).eval()
    with torch.no_grad():  # peakier logits than the 0.02 init, so that rows can settle and stop early
        model.get_input_embeddings().weight.mul_(LOGIT_SCALE)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def backend(model_dir, device):
    """The tiny model on ``device`` (``--device``), in float32 there too (CUDA's default is bf16)."""
    from engine.backends.block_loading import load_block as load

    b = load(str(model_dir), device=device, dtype="float32", allow_download=False, context_tokens=None,
             progress=False)
    b.options.sampler = SETTINGS
    return b


@pytest.fixture()
def fresh(backend):
    backend.cache.clear()
    backend.mode = "pinned"
    yield backend
    backend.cache.clear()
    backend.mode = "pinned"
