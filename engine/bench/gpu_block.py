"""GPU benchmark for the DiffusionGemma block-diffusion backend (random weights).

Builds the full-size 26B-A4B architecture (Gemma 4 26B-A4B text dimensions:
30 layers, hidden 2816, 128 experts top-8, vocab 262,144) with random bf16
weights on the GPU, so no checkpoint is needed: first on the meta device, where
the encoder's weights are tied to the decoder's, then given memory one tensor
per distinct weight (building it on the GPU directly allocated the encoder and
the decoder separately before tying them: ~100 GB peak, more than an 80 GB
card).  It measures with a fixed step count (adaptive stopping off, so every
run does the same work):

* per-step time (decoder forward + sampler) at batch 1 and with length
  candidates (one row per candidate);
* canvas tokens/s at batch 1 and with candidates;
* single-line fill latency with a ~4k-token prefix and a warm prompt cache
  (the user typed one more character);
* transformers' own ``generate`` on the same prompt and steps, side by side.

Random weights give meaningless text but the same arithmetic and memory
traffic per step as the real checkpoint.  ``--tiny`` runs the same code on a
toy config (CPU is fine) to check that the script works.

    python -m engine.bench.gpu_block --out bench_block.json
    python -m engine.bench.gpu_block --tiny --device cpu
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import sysconfig
import time
from pathlib import Path

import torch

#: Gemma 4 26B-A4B text dimensions (DiffusionGemma-26B-A4B shares them)
FULL_TEXT = dict(vocab_size=262_144, hidden_size=2816, intermediate_size=2112, num_hidden_layers=30,
                 num_attention_heads=16, num_key_value_heads=8, num_global_key_value_heads=2, head_dim=256,
                 global_head_dim=512, sliding_window=1024, num_experts=128, top_k_experts=8,
                 moe_intermediate_size=704, max_position_embeddings=262_144)
TINY_TEXT = dict(vocab_size=4096, hidden_size=64, intermediate_size=128, num_hidden_layers=6,
                 num_attention_heads=2, num_key_value_heads=1, head_dim=32, global_head_dim=32,
                 sliding_window=64, num_experts=8, top_k_experts=2, moe_intermediate_size=32,
                 max_position_embeddings=8192)
#: the smallest vision tower the config accepts: the benchmark is text only
SMALL_VISION = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                    num_key_value_heads=2, head_dim=8)


def build_model(tiny: bool, device: str, dtype: torch.dtype):
    """The random-weight model on ``device``, allocated once per distinct weight."""
    from transformers import DiffusionGemmaConfig, DiffusionGemmaForBlockDiffusion

    config = DiffusionGemmaConfig(text_config=dict(TINY_TEXT if tiny else FULL_TEXT), vision_config=SMALL_VISION,
                                  canvas_length=256)
    with torch.device("meta"):  # no memory yet; post_init ties encoder, decoder and LM head here
        model = DiffusionGemmaForBlockDiffusion._from_config(config, dtype=dtype)
    materialize(model, device)
    torch.manual_seed(0)
    with torch.no_grad():
        model.initialize_weights()  # transformers' own init, buffers (RoPE, scales) included ...
        for module in model.modules():  # ... except the encoder layers' scalars, which a checkpoint supplies
            scalar = getattr(module, "layer_scalar", None)
            if isinstance(scalar, torch.Tensor):
                scalar.fill_(1.0)
    return model.eval()


def materialize(model: torch.nn.Module, device: str) -> None:
    """Give every meta parameter and buffer uninitialized memory on ``device``.

    A weight shared by several modules (tied) is one tensor on the meta device
    and stays one tensor here: it is allocated once and put back everywhere it
    was (``Module.to_empty`` would allocate it once per module that holds it)."""
    done: dict[int, torch.nn.Parameter] = {}
    buffers: dict[int, torch.Tensor] = {}
    for module in model.modules():
        for name, p in list(module._parameters.items()):
            if p is not None and p.is_meta:
                if id(p) not in done:
                    done[id(p)] = torch.nn.Parameter(torch.empty_like(p, device=device),
                                                     requires_grad=p.requires_grad)
                module._parameters[name] = done[id(p)]
        for name, b in list(module._buffers.items()):
            if b is not None and b.is_meta:
                if id(b) not in buffers:
                    buffers[id(b)] = torch.empty_like(b, device=device)
                module._buffers[name] = buffers[id(b)]


def build_tokenizer(vocab_limit: int):
    """Byte-level BPE trained on stdlib code; ids stay below the model's vocabulary."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = [p.read_text(errors="replace") for p in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:60]]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=min(4000, vocab_limit), show_progress=False,
                                  special_tokens=["<pad>", "<eos>", "<bos>", "<unk>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>",
                                   unk_token="<unk>", clean_up_tokenization_spaces=False)
    return fast, texts


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


def prefix_text(texts: list[str], tokenizer, tokens: int) -> str:
    """About ``tokens`` tokens of real code, ending mid-function like an editor buffer."""
    text = "\n".join(texts)
    ids = tokenizer(text[: tokens * 8], add_special_tokens=False)["input_ids"][:tokens]
    return tokenizer.decode(ids)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="toy config (script check, any device)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default=None, help="bfloat16 (cuda default) or float32")
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--prefix-tokens", type=int, default=4096)
    ap.add_argument("--candidates", type=int, default=4, help="middle-length candidates (rows)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--fixed-shape", action="store_true", help="bucket-padded prompt KV (block_fixed)")
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile + CUDA graphs for the step (cuda; implies --fixed-shape)")
    ap.add_argument("--skip-generate", action="store_true")
    ap.add_argument("--out", default=None, help="write the JSON results here")
    args = ap.parse_args(argv)

    from engine.backends.block_diffusion import BlockDiffusionBackend, BlockOptions
    from engine.backends.block_sampler import SamplerSettings, uniform_noise
    from engine.engine import Engine
    from engine.types import InfillRequest

    dtype = getattr(torch, args.dtype) if args.dtype else (torch.bfloat16 if args.device.startswith("cuda")
                                                            else torch.float32)
    t0 = time.perf_counter()
    model = build_model(args.tiny, args.device, dtype)
    load_s = time.perf_counter() - t0
    build_peak = torch.cuda.max_memory_allocated() if args.device.startswith("cuda") else None
    tok, texts = build_tokenizer(model.config.text_config.vocab_size)
    # fixed step count: stability threshold above the step count means "never stop early"
    fixed = SamplerSettings(steps=args.steps, stability_threshold=args.steps + 1, confidence_threshold=1e-9)
    backend = BlockDiffusionBackend(model, tok, model_path="random-26B-A4B" if not args.tiny else "random-tiny",
                                    device=args.device, dtype=str(dtype).replace("torch.", ""),
                                    context_tokens=args.prefix_tokens + 512,
                                    options=BlockOptions(sampler=fixed, max_candidates=args.candidates,
                                                         fixed_shape=args.fixed_shape, compile=args.compile))
    results: dict[str, object] = {
        "device": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu",
        "config": "tiny" if args.tiny else "26B-A4B (random weights)", "dtype": str(dtype),
        "experts_implementation": getattr(model.config.get_text_config(), "_experts_implementation", None),
        "fixed_shape": backend.options.fixed_shape, "compiled": backend._decoder is not backend.model,
        "steps": args.steps, "canvas": backend.canvas, "model_build_s": round(load_s, 1),
        "params_b": round(sum(p.numel() for p in model.parameters()) / 1e9, 2),
        "build_peak_gib": round(build_peak / 2**30, 1) if build_peak is not None else None,
    }

    prefix = prefix_text(texts, tok, args.prefix_tokens)
    ids = [backend.bos_id] + tok(prefix, add_special_tokens=False)["input_ids"]
    kv, enc = backend.cache.encode(ids, args.device)
    results["prefix_tokens"] = len(ids)
    results["cold_encode_ms"] = round(enc.ms, 2)

    def denoise(rows: int) -> None:
        gen = torch.Generator(device=args.device).manual_seed(0)
        canvas = uniform_noise((rows, backend.canvas), backend.vocab, args.device, gen)
        for _state in backend.denoise(kv, canvas, steps=args.steps, generator=gen, settings=fixed):
            pass

    for rows in sorted({1, args.candidates}):
        denoise(rows)  # warm-up (allocator, kernels, compile)
        runs = timed(lambda r=rows: denoise(r), args.device, args.repeat)
        ms = statistics.median(runs)
        results[f"rows{rows}"] = {
            "denoise_ms": round(ms, 2), "per_step_ms": round(ms / args.steps, 2),
            "canvas_tokens_per_s": round(rows * backend.canvas / (ms / 1000.0), 1),
        }

    # single-line fill: warm cache, the user typed one more character
    eng = Engine(backend)
    lat, reused = [], []
    for i in range(args.repeat + 1):
        req = InfillRequest(prefix=prefix + "x" * (i + 1), suffix="\n    return result\n", language="python",
                            max_new_tokens=16, steps=args.steps, seed=0)
        sync(args.device)
        res = eng.infill(req)
        if i:  # first one warms up
            lat.append(res.timings["total_ms"])
            reused.append(res.timings.get("reused_tokens", 0.0))
    results["single_line_fill"] = {"total_ms_p50": round(statistics.median(lat), 2),
                                   "total_ms_max": round(max(lat), 2),
                                   "reused_prompt_tokens": int(statistics.median(reused)),
                                   "rows": int(res.timings["rows"]), "rounds": int(res.timings["rounds"]),
                                   "forwards": res.forwards, "extra_steps": int(res.timings["extra_steps"])}
    if results["compiled"]:  # typing must not recompile (one graph per step kind, not per keystroke)
        from torch._dynamo.utils import counters

        results["dynamo_unique_graphs"] = int(counters["stats"].get("unique_graphs", 0))

    if not args.skip_generate:
        from transformers.models.diffusion_gemma.generation_diffusion_gemma import EntropyBoundSamplerConfig

        input_ids = torch.tensor([ids], device=args.device)

        def hf() -> None:
            model.generate(input_ids, max_new_tokens=backend.canvas, max_denoising_steps=args.steps,
                           sampler_config=EntropyBoundSamplerConfig(entropy_bound=fixed.entropy_bound),
                           t_min=fixed.t_min, t_max=fixed.t_max, stability_threshold=fixed.stability_threshold,
                           confidence_threshold=fixed.confidence_threshold)

        hf()
        runs = timed(hf, args.device, args.repeat)
        ms = statistics.median(runs)
        results["transformers_generate"] = {
            "total_ms_incl_prompt_encode": round(ms, 2),
            "canvas_tokens_per_s": round(backend.canvas / (ms / 1000.0), 1),
        }

    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
