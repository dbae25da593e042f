"""Train the byte-level BPE tokenizer on the training split only."""
from __future__ import annotations

from pathlib import Path

from engine.training.corpus import read_texts
from engine.training.model_factory import train_tokenizer


def build_tokenizer(corpus_dir: Path, out_file: Path, vocab_size: int = 8192, sample_bytes: int = 40_000_000) -> int:
    tok = train_tokenizer(read_texts(corpus_dir / "train.jsonl", limit_bytes=sample_bytes), vocab_size)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(out_file))
    return tok.get_vocab_size()
