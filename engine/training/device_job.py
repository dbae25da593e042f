"""The one-shot GPU training job: corpus, training and exports in one command.

Run by ``scripts/device/train.sh`` as the whole command of one device call
(see docs/DEVICE.md).  Everything happens inside a wall-clock budget so that a
run always ends with an annealed, exported model before the call's limit:

1. collect the corpus from this machine's Python installation with every core
   (``source_pool``: permissive licences only, deduplicated, held-out split by
   content hash, evaluation data removed);
2. train the masked-diffusion objective (``examples``: editor-like spans with
   unknown-length filler, random masking, cross-file context) in bf16 with a
   fused AdamW and a warm-up/stable/decay schedule over the time left;
3. export a complete model directory into ``--out`` every ``--export-every``
   seconds and at the end (``export``: at most 8 files).

``--smoke`` runs the same path on the CPU with a tiny model in about a minute.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

STARTED = time.time()

#: files the export may use besides the weight shards (config, 2 tokenizer files, diffill.json, index)
FIXED_FILES = 5
MAX_FILES = 8


@dataclass
class JobConfig:
    out: str
    seconds: float = 540.0  # the whole job, corpus and final export included
    size: str = "base"
    seq_len: int = 512
    batch_size: int = 256
    lr: float = 1.5e-3
    warmup_steps: int = 300
    decay_fraction: float = 0.2
    weight_decay: float = 0.01
    export_every: float = 90.0
    summary_every: float = 60.0
    workers: int = 0  # 0: every core
    init_from: str = ""
    compile: str = "auto"  # auto: on CUDA only
    compile_after: int = 30  # eager steps measured before compiling
    max_files: int = 0
    max_steps: int = 0
    tokenizer: str = ""
    seed: int = 0
    device: str = "auto"
    smoke: bool = False
    reserve_seconds: float = 25.0  # kept for the final held-out loss and export
    notes: dict = field(default_factory=dict)


def log(msg: str) -> None:
    print(f"[{time.time() - STARTED:6.1f}s] {msg}", flush=True)


def parse_args(argv: list[str] | None = None) -> JobConfig:
    defaults = JobConfig(out="")
    p = argparse.ArgumentParser(prog="device_job", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=os.environ.get("OUT", ""), help="where the model directory goes ($OUT)")
    for name in ("seconds", "lr", "decay_fraction", "weight_decay", "export_every", "summary_every",
                 "reserve_seconds"):
        p.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(defaults, name))
    for name in ("seq_len", "batch_size", "warmup_steps", "workers", "compile_after", "max_files", "max_steps",
                 "seed"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(defaults, name))
    p.add_argument("--size", default=defaults.size)
    p.add_argument("--init-from", default="", help="continue from an earlier export of the same architecture")
    p.add_argument("--compile", choices=["auto", "on", "off"], default="auto")
    p.add_argument("--tokenizer", default="", help="tokenizer.json (default: the bundled model's)")
    p.add_argument("--device", default="auto")
    p.add_argument("--smoke", action="store_true", help="tiny CPU run of the same code path (CI)")
    args = p.parse_args(argv)
    cfg = JobConfig(**{k: v for k, v in vars(args).items()})
    if cfg.smoke:
        cfg.size, cfg.seq_len, cfg.batch_size, cfg.device, cfg.compile = "test", 128, 8, "cpu", "off"
        cfg.max_steps = cfg.max_steps or 40
        cfg.max_files = cfg.max_files or 300
        cfg.workers = cfg.workers or 2
        cfg.warmup_steps, cfg.export_every, cfg.summary_every = 5, 15.0, 10.0
        cfg.seconds = min(cfg.seconds, 150.0)
        cfg.reserve_seconds = 10.0
    if not cfg.out:
        p.error("--out (or $OUT) is required")
    return cfg


def flops_per_step(model, batch_size: int, seq_len: int, masked: int) -> float:
    """Model FLOPs of one training step (forward + backward): the body on every
    position, attention over the full row, the head on masked positions only."""
    cfg = model.config
    body = sum(p.numel() for p in model.model.parameters()) - model.model.embeddings.tok_embeddings.weight.numel()
    tokens = batch_size * seq_len
    attention = 12 * cfg.num_hidden_layers * seq_len * cfg.hidden_size * tokens
    head = 6 * (cfg.hidden_size * cfg.hidden_size + cfg.hidden_size * cfg.vocab_size) * masked
    return 6 * body * tokens + attention + head


def masked_loss(model, batch: dict):
    """Weighted cross-entropy on masked positions; the LM head runs on those rows only."""
    import torch

    from engine.training.examples import IGNORE

    hidden = model.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    sel = batch["labels"] != IGNORE
    logits = model.decoder(model.head(hidden[sel]))
    losses = torch.nn.functional.cross_entropy(logits.float(), batch["labels"][sel], reduction="none")
    w = batch["weights"][sel]
    return (losses * w).sum() / w.sum().clamp_min(1.0)


def _eager():
    """Run compiled modules eagerly (held-out loss, export) so they never recompile."""
    import torch

    set_stance = getattr(torch.compiler, "set_stance", None)
    return set_stance("force_eager") if set_stance else contextlib.nullcontext()


def _compile_layers(model) -> None:
    """Regional compilation: each encoder layer, so the few distinct layer kinds
    compile once each instead of the whole model as one graph."""
    import torch

    for name in ("recompile_limit", "cache_size_limit"):  # one entry per layer kind, with room to spare
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, max(64, getattr(torch._dynamo.config, name)))
    for layer in model.model.layers:
        layer.compile(dynamic=False)


def _uncompile_layers(model) -> None:
    for layer in model.model.layers:
        layer._compiled_call_impl = None


def run(cfg: JobConfig) -> dict:
    import torch
    import transformers
    from tokenizers import Tokenizer
    from transformers import ModernBertForMaskedLM

    from engine.loading import BUNDLED_DIR
    from engine.training.decontaminate import Decontaminator
    from engine.training.example_stream import ExampleStream, StreamConfig
    from engine.training.examples import ExampleBuilder, ExampleConfig
    from engine.training.export import SHARD_LIMIT, shard_count, write_static, write_weights
    from engine.training.model_factory import build_config, special_ids, wrap_tokenizer
    from engine.training.schedule import WSD
    from engine.training.source_pool import collect

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") else platform.processor() or "cpu"
    cpus = os.cpu_count() or 1
    log(f"torch {torch.__version__}, transformers {transformers.__version__}, python {platform.python_version()}, "
        f"device {device} ({gpu}), {cpus} CPUs")
    torch.manual_seed(cfg.seed)
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    # -- corpus ------------------------------------------------------------------------
    pool = collect(workers=cfg.workers or cpus, max_files=cfg.max_files or None,
                   decontaminator=Decontaminator.default())
    st = pool.stats
    log(f"corpus: {st.get('train', 0)} train files ({st.get('train_bytes', 0) / 1e6:.0f} MB), "
        f"{st.get('heldout', 0)} held out, {len(pool.licences)} distributions; skipped {json.dumps(st)}")
    if not pool.train:
        raise SystemExit("no training files found")
    heldout = pool.heldout or pool.train[:8]

    # -- model -------------------------------------------------------------------------
    tok_file = cfg.tokenizer or str(BUNDLED_DIR / "tokenizer.json")
    raw_tok = Tokenizer.from_file(tok_file)
    hf_tok = wrap_tokenizer(raw_tok)
    mask_id, filler_id, pad_id = special_ids(raw_tok)
    previous: list = []
    if cfg.init_from:
        model = ModernBertForMaskedLM.from_pretrained(cfg.init_from, dtype=torch.float32)
        meta_file = Path(cfg.init_from) / "diffill.json"
        if meta_file.is_file():
            prior = json.loads(meta_file.read_text()).get("training") or {}
            if prior:  # keep the whole recipe's record, newest run first
                previous = [{k: v for k, v in prior.items() if k != "previous_runs"}] + prior.get("previous_runs", [])
        if model.config.vocab_size != raw_tok.get_vocab_size():
            raise SystemExit(f"--init-from {cfg.init_from}: vocabulary {model.config.vocab_size} "
                             f"!= tokenizer {raw_tok.get_vocab_size()}")
        seq_len = min(cfg.seq_len, model.config.max_position_embeddings)
    else:
        model = ModernBertForMaskedLM(build_config(cfg.size, raw_tok.get_vocab_size(), cfg.seq_len, pad_id))
        seq_len = cfg.seq_len
    n_params = sum(p.numel() for p in model.parameters())
    shards = shard_count(model, torch.bfloat16)
    if FIXED_FILES + shards > MAX_FILES:
        raise SystemExit(f"{n_params / 1e6:.1f}M parameters need {shards} shards of {SHARD_LIMIT} bytes: "
                         f"more than {MAX_FILES} files in all")
    model.to(device)
    model.train()
    log(f"model: {n_params / 1e6:.1f}M parameters ({shards} shards), context {seq_len}, "
        f"batch {cfg.batch_size} x {seq_len}")
    write_static(out, model.config, hf_tok)

    # -- data --------------------------------------------------------------------------
    workers = max(1, (cfg.workers or cpus) - (2 if device.startswith("cuda") else 0))
    stream = ExampleStream(pool, tok_file, StreamConfig(batch_size=cfg.batch_size, seq_len=seq_len), cfg.seed)
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=workers,
                                         pin_memory=device.startswith("cuda"), prefetch_factor=4,
                                         persistent_workers=True, multiprocessing_context="fork")
    held_builder = ExampleBuilder(raw_tok, mask_id, filler_id, pad_id, ExampleConfig(seq_len=seq_len), 1234)
    import random as _random

    held_rows = min(cfg.batch_size, 64)
    held_batches = [held_builder.batch([d.text for d in _random.Random(i).choices(heldout, k=held_rows)],
                                       width=seq_len) for i in range(4)]

    # -- optimiser and schedule -----------------------------------------------------------
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98),
                            fused=device.startswith("cuda"))
    warmup = min(cfg.warmup_steps, 100) if cfg.init_from else cfg.warmup_steps
    schedule = WSD(cfg.lr, warmup, cfg.decay_fraction)
    autocast = torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu", dtype=torch.bfloat16)
    use_compile = cfg.compile == "on" or (cfg.compile == "auto" and device.startswith("cuda"))

    def heldout_loss() -> float:
        with torch.no_grad(), autocast, _eager():
            losses = [float(masked_loss(model, {k: v.to(device) for k, v in b.items()})) for b in held_batches]
        return sum(losses) / len(losses)

    record: dict = {
        "config": {k: v for k, v in asdict(cfg).items() if k != "notes"},
        "params": n_params, "device": gpu, "cpus": cpus,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "python": platform.python_version()},
        "corpus": pool.summary(), "history": [], "tokens": 0, "steps": 0,
        "compile": {"requested": use_compile},
    }
    if previous:
        record["previous_runs"] = previous

    def export(final: bool) -> None:
        record["seconds"] = round(time.time() - t_train, 1)
        record["tokens_per_second"] = round(record["tokens"] / max(1e-9, record["seconds"]), 1)
        record["tflops"] = round(record["flops"] / max(1e-9, record["seconds"]) / 1e12, 2)
        record["final"] = final
        with _eager():
            write_weights(out, model, {"train_context": seq_len, "default_context": min(384, seq_len),
                                       "training": record})

    # -- training ----------------------------------------------------------------------
    t_train = time.time()
    deadline = STARTED + cfg.seconds - cfg.reserve_seconds
    budget = max(1.0, deadline - t_train)
    compile_note = f"after {cfg.compile_after} steps" if use_compile else "off"
    log(f"training for {budget:.0f} s (lr {cfg.lr}, warm-up {warmup} steps, decay over the last "
        f"{cfg.decay_fraction:.0%}), {workers} data workers, compile {compile_note}")
    record["flops"] = 0.0
    step = 0
    skipped = 0
    last_export = last_summary = time.time()
    window_loss, window_n, window_tokens, window_t = 0.0, 0, 0, time.time()
    step_times: list[float] = []
    held = float("nan")
    it = iter(loader)
    while True:
        now = time.time()
        if now >= deadline or (cfg.max_steps and step >= cfg.max_steps):
            break
        frac = step / cfg.max_steps if cfg.max_steps else (now - t_train) / budget
        lr = schedule.lr(step, frac)
        for g in opt.param_groups:
            g["lr"] = lr
        if use_compile and step == cfg.compile_after:
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            eager = sorted(step_times[-15:])
            record["compile"]["eager_step_s"] = round(eager[len(eager) // 2], 4) if eager else None
            _compile_layers(model)
            compile_started = time.time()
        batch = {k: v.to(device, non_blocking=True) for k, v in next(it).items()}
        t_step = time.time()
        try:
            with autocast:
                loss = masked_loss(model, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
        except Exception as exc:
            if not (use_compile and step == cfg.compile_after):
                raise
            log(f"torch.compile failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); eager from here")
            _uncompile_layers(model)
            record["compile"]["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
            use_compile = False
            opt.zero_grad(set_to_none=True)
            continue
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0))
        if not math.isfinite(grad_norm):
            skipped += 1
            opt.zero_grad(set_to_none=True)
            if skipped > 50:
                raise SystemExit("more than 50 steps with non-finite gradients: stopping")
            continue
        opt.step()
        loss_value = loss.item()
        step_times.append(time.time() - t_step)
        if use_compile and step == cfg.compile_after:
            record["compile"]["compile_s"] = round(time.time() - compile_started, 1)
            log(f"compiled the encoder layers in {record['compile']['compile_s']} s")
        if use_compile and step == cfg.compile_after + 20:
            compiled = sorted(step_times[-15:])
            record["compile"]["compiled_step_s"] = round(compiled[len(compiled) // 2], 4)
        step += 1
        masked = int((batch["labels"] != -100).sum())
        tokens = int(batch["attention_mask"].sum())
        record["flops"] += flops_per_step(model, cfg.batch_size, seq_len, masked)
        record["tokens"] += tokens
        record["steps"] = step
        record["skipped_steps"] = skipped
        window_loss += loss_value
        window_n += 1
        window_tokens += tokens
        now = time.time()
        if now - last_summary >= cfg.summary_every:
            held = heldout_loss()
            elapsed = now - t_train
            entry = {"step": step, "seconds": round(elapsed, 1), "tokens": record["tokens"],
                     "loss": round(window_loss / window_n, 4), "heldout_loss": round(held, 4), "lr": lr,
                     "tokens_per_second": round(window_tokens / (now - window_t), 1),
                     "tflops": round(record["flops"] / elapsed / 1e12, 2)}
            if device.startswith("cuda"):
                entry["gpu_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 1)
            record["history"].append(entry)
            log(f"step {step} | {record['tokens'] / 1e6:.1f}M tokens | {entry['tokens_per_second'] / 1e3:.0f}k tok/s "
                f"| {entry['tflops']:.0f} TFLOP/s | loss {entry['loss']:.3f} | held-out {held:.3f} | lr {lr:.2e}")
            window_loss, window_n, window_tokens, window_t = 0.0, 0, 0, time.time()
            last_summary = time.time()
        if time.time() - last_export >= cfg.export_every:
            export(final=False)
            last_export = time.time()
            log(f"exported step {step} to {out}")
    record["heldout_loss"] = round(heldout_loss(), 4)
    record["history"].append({"step": step, "seconds": round(time.time() - t_train, 1), "tokens": record["tokens"],
                              "heldout_loss": record["heldout_loss"], "lr": 0.0})
    export(final=True)
    log(f"done: {step} steps, {record['tokens'] / 1e6:.1f}M tokens, {record['tokens_per_second'] / 1e3:.0f}k tok/s, "
        f"{record['tflops']} TFLOP/s, held-out loss {record['heldout_loss']}, files in {out}: "
        f"{sorted(p.name for p in out.iterdir())}")
    return record


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    record = run(cfg)
    summary = {k: record.get(k) for k in ("steps", "tokens", "seconds", "tokens_per_second", "tflops", "heldout_loss",
                                          "compile")}
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
