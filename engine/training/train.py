"""Train the bundled masked-diffusion model on the corpus (time-budgeted).

Runs on CPU (bf16 autocast) or CUDA.  Exports a complete model directory
(weights as safetensors shards, tokenizer, diffill.json, training log) every
``--export-every`` minutes and at the end, so an interrupted run still leaves a
loadable model.
"""
from __future__ import annotations

import json
import math
import random
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from engine.training.examples import IGNORE, ExampleBuilder, ExampleConfig
from engine.training.model_factory import build_config, special_ids, wrap_tokenizer, write_meta


@dataclass
class TrainConfig:
    size: str = "tiny"
    seq_len: int = 1024
    batch_size: int = 8
    lr: float = 1.5e-3
    warmup_steps: int = 150
    weight_decay: float = 0.01
    minutes: float = 60.0
    max_steps: int = 0  # 0: until the time budget ends
    export_every_min: float = 10.0
    seed: int = 0
    threads: int = 0
    init_from: str = ""  # continue from an exported model directory (same tokenizer)
    max_shard_size: str = "15MB"


def _load_texts(path: Path) -> list[str]:
    with path.open() as f:
        return [json.loads(line)["text"] for line in f]


def _masked_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Cross-entropy on masked positions only; the LM head runs on those rows only."""
    hidden = model.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    sel = batch["labels"] != IGNORE
    logits = model.decoder(model.head(hidden[sel]))
    losses = torch.nn.functional.cross_entropy(logits.float(), batch["labels"][sel], reduction="none")
    w = batch["weights"][sel]
    return (losses * w).sum() / w.sum().clamp_min(1.0)


def export(model, hf_tok, out_dir: Path, cfg: TrainConfig, log: dict, corpus_dir: Path | None = None) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    if corpus_dir and (corpus_dir / "licenses.json").is_file():  # what the weights were trained on
        shutil.copyfile(corpus_dir / "licenses.json", out_dir / "corpus_licenses.json")
    for old in out_dir.glob("model*.safetensors"):
        old.unlink()
    model.save_pretrained(out_dir, max_shard_size=cfg.max_shard_size)
    hf_tok.save_pretrained(out_dir)
    write_meta(out_dir, cfg.seq_len, {"default_context": 384})
    (out_dir / "training_log.json").write_text(json.dumps(log, indent=1) + "\n")


def train(corpus_dir: Path, tokenizer_path: Path, out_dir: Path, cfg: TrainConfig, progress: bool = True) -> dict:
    from tokenizers import Tokenizer
    from transformers import ModernBertForMaskedLM

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    raw_tok = Tokenizer.from_file(str(tokenizer_path))
    hf_tok = wrap_tokenizer(raw_tok)
    mask_id, filler_id, pad_id = special_ids(raw_tok)
    config = build_config(cfg.size, raw_tok.get_vocab_size(), cfg.seq_len, pad_id)
    if cfg.init_from:
        model = ModernBertForMaskedLM.from_pretrained(cfg.init_from, dtype=torch.float32).to(device)
    else:
        model = ModernBertForMaskedLM(config).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {cfg.size}, {n_params / 1e6:.1f}M parameters, device {device}", file=sys.stderr)

    texts = _load_texts(corpus_dir / "train.jsonl")
    held = _load_texts(corpus_dir / "heldout.jsonl")
    weights = [min(len(t), 20_000) for t in texts]
    rng = random.Random(cfg.seed)
    builder = ExampleBuilder(raw_tok, mask_id, filler_id, pad_id, ExampleConfig(seq_len=cfg.seq_len), cfg.seed)
    held_builder = ExampleBuilder(raw_tok, mask_id, filler_id, pad_id, ExampleConfig(seq_len=cfg.seq_len), 1234)
    held_batches = [held_builder.batch(random.Random(i).sample(held, cfg.batch_size)) for i in range(4)]

    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))

    def lr_at(step: int, frac_time: float) -> float:
        if step < cfg.warmup_steps:
            return cfg.lr * (step + 1) / cfg.warmup_steps
        frac = min(1.0, frac_time)
        return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    autocast = torch.autocast(device_type=device, dtype=torch.bfloat16)
    log: dict = {"config": asdict(cfg), "params": n_params, "history": [], "tokens": 0}
    prior_log = Path(cfg.init_from) / "training_log.json" if cfg.init_from else None
    if prior_log and prior_log.is_file():  # keep the whole recipe's record when continuing
        log["previous_runs"] = [json.loads(prior_log.read_text())]
    t0 = time.time()
    last_export = t0
    budget = cfg.minutes * 60
    step = 0
    bar = tqdm(total=int(budget), desc="train (s)", disable=not progress, file=sys.stderr, unit="s")
    while True:
        elapsed = time.time() - t0
        if elapsed >= budget or (cfg.max_steps and step >= cfg.max_steps):
            break
        frac_time = step / cfg.max_steps if cfg.max_steps else elapsed / budget
        for g in opt.param_groups:
            g["lr"] = lr_at(step, frac_time)
        batch = builder.batch(rng.choices(texts, weights=weights, k=cfg.batch_size))
        batch = {k: v.to(device) for k, v in batch.items()}
        model.train()
        with autocast:
            loss = _masked_loss(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        log["tokens"] += int(batch["attention_mask"].sum())
        if step % 25 == 0:
            model.eval()
            with torch.no_grad(), autocast:
                held_loss = sum(float(_masked_loss(model, {k: v.to(device) for k, v in b.items()}))
                                for b in held_batches) / len(held_batches)
            entry = {"step": step, "seconds": round(time.time() - t0, 1), "loss": round(float(loss), 4),
                     "heldout_loss": round(held_loss, 4), "tokens": log["tokens"], "lr": opt.param_groups[0]["lr"]}
            log["history"].append(entry)
            bar.set_postfix(loss=entry["loss"], held=entry["heldout_loss"], step=step)
        bar.n = int(min(budget, time.time() - t0))
        bar.refresh()
        if time.time() - last_export > cfg.export_every_min * 60:
            export(model, hf_tok, out_dir, cfg, log, corpus_dir)
            last_export = time.time()
    bar.close()
    log["seconds"] = round(time.time() - t0, 1)
    log["steps"] = step
    log["tokens_per_second"] = round(log["tokens"] / max(1.0, log["seconds"]), 1)
    export(model, hf_tok, out_dir, cfg, log, corpus_dir)
    return log
