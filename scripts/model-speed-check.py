"""Predicted against measured: one forward of each catalog family at full size, on this machine.

Why: ``diffill models list`` and ``diffill doctor`` recommend models by predicted
time (``engine.model_speed``); this checks the prediction.  Each model's real
network is built at full size with random weights (the weights do not change
the time): on the meta device first, then given uninitialised memory in the
engine's dtype and filled by repeating one random block, so a 7B model never
has a float32 copy; the native families through the same family modules the
loader uses (full attention, shifted logits), the bundled model as the engine
loads it.  Then, ``--rounds`` times, the probe and one forward over the model's
default window back to back, with the load average; a model is freed before the
next is built.  A model whose weights do not fit the available memory (with
``--headroom-gb`` to spare) is skipped with that reason.

    .venv/bin/python scripts/model-speed-check.py --models diffill-tiny open-dcoder-0.5b dream-coder-7b \\
        --threads 1 --rounds 3 --out docs/bench/model-speed.json

Figures from it are in docs/MODELS.md ("Speed on this machine").
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from engine import catalog
from engine.machine import probe as machine_probe
from engine.model_speed import arch_of, predict
from engine.speed_probe import measure

#: elements of the random block the weights are filled with (bf16: 8 MB)
BLOCK = 1 << 22


def raw_config(model) -> dict:
    """An upstream config.json for the family, from the catalog's architecture."""
    a = model.architecture
    if model.family == "llada":
        return {"model_type": "llada", "d_model": a["hidden"], "n_heads": a["heads"], "n_kv_heads": a["kv_heads"],
                "n_layers": a["layers"], "mlp_hidden_size": a["intermediate"], "embedding_size": a["vocab"],
                "vocab_size": a["vocab"], "max_sequence_length": 4096, "rope_theta": 500000.0,
                "weight_tying": False}
    return {"model_type": "Dream" if model.family in ("dream", "dreamon") else "qwen2",
            "vocab_size": a["vocab"], "hidden_size": a["hidden"], "intermediate_size": a["intermediate"],
            "num_hidden_layers": a["layers"], "num_attention_heads": a["heads"],
            "num_key_value_heads": a["kv_heads"], "tie_word_embeddings": a["tied_embeddings"],
            "max_position_embeddings": 32768, "rope_theta": 1000000.0}


def fill_random(model: torch.nn.Module) -> None:
    """Random values in every matrix (one block repeated), ones in norms, zeros in biases."""
    generator = torch.Generator().manual_seed(0)
    dtype = next(model.parameters()).dtype
    block = (torch.randn(BLOCK, generator=generator) * 0.02).to(dtype)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.fill_(0.0 if name.endswith("bias") else 1.0)
                continue
            flat = p.view(-1)
            for start in range(0, flat.numel(), BLOCK):
                piece = flat[start:start + BLOCK]
                piece.copy_(block[:piece.numel()])


def build_native(model, dtype: torch.dtype):
    """The family's own network (engine.backends.families), full size, random weights."""
    from engine.backends.aligned_logits import AlignedLogits
    from engine.backends.families import get
    from engine.backends.families.base import make_bidirectional

    family = get("dream" if model.family == "dreamon" else model.family)
    config = family.build_config(raw_config(model))
    cls = family.model_class()
    with torch.device("meta"):
        network = cls._from_config(config, dtype=dtype)
    network = network.to_empty(device="cpu")
    if config.tie_word_embeddings:
        network.lm_head.weight = network.model.embed_tokens.weight
    network.model.rotary_emb = type(network.model.rotary_emb)(config=network.config)  # real RoPE tables
    fill_random(network)
    network = make_bidirectional(network.eval())
    net = AlignedLogits(network).eval() if family.shifted else network
    window = model.architecture["default_window"]
    ids = torch.randint(0, model.architecture["vocab"] - 1000, (1, window))
    canvas = (window // 2, window // 2 + 32)

    def forward() -> None:
        with torch.inference_mode():
            net(input_ids=ids).logits[:, canvas[0]:canvas[1]].float()

    return net, forward


def build_bundled(dtype: str, threads: int):
    """The bundled model as the engine loads it; one forward as the engine's full forward runs it."""
    from engine import load_engine

    backend = load_engine(None, device="cpu", dtype=dtype, threads=threads).backend
    window = backend.context_tokens
    ids = torch.randint(10, 8000, (1, window))

    def forward() -> None:
        backend.canvas_logits(ids, window // 2, window // 2 + 32)

    return backend, forward


def machine_text() -> str:
    """The CPU's model name, its core count and whether it has bf16 units."""
    from engine.machine import cpu_has_fast_bf16

    name = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores, bf16 units: {'yes' if cpu_has_fast_bf16() else 'no'}"


def time_forward(forward, reps: int) -> tuple[list[float], list[float]]:
    """Wall and this thread's CPU milliseconds of ``reps`` forwards (after one warm-up)."""
    forward()  # warm-up (kernel choices, first touch of the weights)
    wall, cpu = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.thread_time()
        forward()
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.thread_time() - c0) * 1000)
    return wall, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["diffill-tiny", "open-dcoder-0.5b", "dream-coder-7b"])
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for the probe and the forwards (default: all usable cores)")
    parser.add_argument("--rounds", type=int, default=3, help="probe + forward pairs per model")
    parser.add_argument("--forwards", type=int, default=1, help="timed forwards per round")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--headroom-gb", type=float, default=2.0,
                        help="memory to leave free beyond the model's weights")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    threads = args.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    dtype = getattr(torch, args.dtype)
    results = []
    for name in args.models:
        choice = catalog.lookup(name)
        if choice is None or arch_of(choice.model) is None:
            print(json.dumps({"model": name, "skipped": "not a catalog model with an architecture"}))
            continue
        model = choice.model
        weights_gb = arch_of(model).params() * (2 if args.dtype != "float32" else 4) / 1e9
        available = machine_probe().ram_available_gb
        if weights_gb + args.headroom_gb > available:
            print(json.dumps({"model": name, "skipped": f"needs {weights_gb:.1f} GB + {args.headroom_gb} GB, "
                                                         f"{available:.1f} GB available"}), flush=True)
            continue
        t0 = time.perf_counter()
        if model.bundled:
            holder, forward = build_bundled(args.dtype, threads)
        else:
            holder, forward = build_native(model, dtype)
        built_s = time.perf_counter() - t0
        rounds = []
        for _ in range(args.rounds):
            rates = measure("cpu", args.dtype, threads)
            predicted = predict(model, rates)
            assert predicted is not None
            load_before = os.getloadavg()[0]
            measured, cpu = time_forward(forward, args.forwards)
            rounds.append({"predicted_ms": round(predicted.forward_ms, 1),
                           "probe_share": round(rates.share, 3),
                           "predicted_wall_ms": round(predicted.forward_ms / rates.share, 1),
                           "measured_ms": [round(t, 1) for t in measured],
                           "thread_cpu_ms": [round(t, 1) for t in cpu],
                           "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                           "probe": rates.describe(), "probe_gflops": {f"{r}x{i}": round(v, 1)
                                                                       for (r, i), v in rates.gemm.items()},
                           "bandwidth_gbs": round(rates.bandwidth_gbs, 1)})
            print(json.dumps({"model": name, **rounds[-1]}), flush=True)
        del holder, forward
        gc.collect()

        def median(key: str, rounds: list[dict] = rounds) -> float:
            values = [v for r in rounds for v in (r[key] if isinstance(r[key], list) else [r[key]])]
            return round(statistics.median(values), 1)

        summary = {"model": name, "window": model.architecture["default_window"], "dtype": args.dtype,
                   "threads": threads, "built_s": round(built_s, 1),
                   "predicted_ms_median": median("predicted_ms"), "thread_cpu_ms_median": median("thread_cpu_ms"),
                   "predicted_wall_ms_median": median("predicted_wall_ms"), "measured_ms_median": median("measured_ms"),
                   "rounds": rounds}
        summary["cpu_over_predicted"] = round(summary["thread_cpu_ms_median"] / summary["predicted_ms_median"], 3)
        summary["wall_over_predicted_wall"] = round(summary["measured_ms_median"]
                                                    / summary["predicted_wall_ms_median"], 3)
        print(json.dumps({k: v for k, v in summary.items() if k != "rounds"}), flush=True)
        results.append(summary)
    if args.out:
        args.out.write_text(json.dumps({"machine": machine_text(), "command": " ".join(sys.argv),
                                        "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
