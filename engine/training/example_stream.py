"""An endless stream of training batches, built in DataLoader worker processes.

Each worker samples files (weighted by length, capped), gives a share of them
context from neighbouring files of the same package (``cross_file``), and
builds masked-diffusion examples padded to one fixed width, so a compiled
model sees one shape.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import accumulate

import torch

from engine.context_format import file_header
from engine.training.cross_file import build_context
from engine.training.examples import ExampleBuilder, ExampleConfig
from engine.training.model_factory import special_ids
from engine.training.source_pool import SourcePool


@dataclass(frozen=True)
class StreamConfig:
    batch_size: int
    seq_len: int
    header_only: float = 0.2  # share of examples with the current file's path header only
    cross_file: float = 0.3  # share with snippets of neighbouring files before it
    max_neighbours: int = 2


class ExampleStream(torch.utils.data.IterableDataset):
    def __init__(self, pool: SourcePool, tokenizer_file: str, cfg: StreamConfig, seed: int) -> None:
        self.pool, self.tokenizer_file, self.cfg, self.seed = pool, tokenizer_file, cfg, seed
        self.cum_weights = list(accumulate(min(len(d.text), 20_000) for d in pool.train))

    def context_for(self, index: int, rng: random.Random) -> str:
        doc = self.pool.train[index]
        r = rng.random()
        if r < 1.0 - self.cfg.header_only - self.cfg.cross_file:
            return ""
        if r < 1.0 - self.cfg.cross_file:
            return file_header(doc.path)
        neighbours = self.pool.neighbours(index, rng, rng.randint(1, self.cfg.max_neighbours))
        chars = self.cfg.seq_len // 4 * 3  # about a quarter of the row, at ~3 characters per token
        return build_context([(n.path, n.text) for n in neighbours], doc.path, doc.text[:20_000], rng, chars)

    def __iter__(self):
        from tokenizers import Tokenizer

        info = torch.utils.data.get_worker_info()
        seed = self.seed * 1000 + (info.id if info else 0)
        if info is not None:
            torch.set_num_threads(1)
        tok = Tokenizer.from_file(self.tokenizer_file)
        mask_id, filler_id, pad_id = special_ids(tok)
        builder = ExampleBuilder(tok, mask_id, filler_id, pad_id, ExampleConfig(seq_len=self.cfg.seq_len), seed)
        rng = random.Random(seed)
        population = range(len(self.pool.train))
        while True:
            picks = rng.choices(population, cum_weights=self.cum_weights, k=self.cfg.batch_size)
            texts = [self.pool.train[i].text for i in picks]
            contexts = [self.context_for(i, rng) for i in picks]
            yield builder.batch(texts, contexts, width=self.cfg.seq_len)
