"""Predicted times of a catalog model on this machine: one forward, one typed line, one fill.

Why: a model that fits in memory can still take minutes per suggestion (a 7.6B
model's forward over a 1024-token window is ~15 TFLOP: a minute on a 2-core
CPU).  ``diffill models list`` and ``diffill doctor`` recommend per use from
these predictions: for typing the strongest model whose single line is within a
budget (300 ms by default), for the fill command within 10 s.

A forward's time is the sum over its matrix products (``engine.model_cost``) of
the slower of FLOPs / measured rate and weight bytes / measured bandwidth
(``engine.speed_probe``), plus the activations' traffic between the products
and a fixed cost per operation.  How many forwards a request takes depends on
the family's backend and sampler (``USES``: each figure says where it comes
from); docs/MODELS.md compares predicted and measured times.
"""
from __future__ import annotations

from dataclasses import dataclass

from engine.catalog import CatalogModel
from engine.model_cost import Architecture, ForwardCost, architecture, forward_cost
from engine.speed_probe import Rates

#: default budgets: ghost text while typing must come within a few hundred milliseconds (p50);
#: the fill command (drafts shown live, the user waits for it) can afford seconds
TYPING_BUDGET_MS = 300.0
FILL_BUDGET_MS = 10_000.0
#: the canvas of a request at the server's defaults (``maxNewTokens``)
CANVAS = 32
#: canvas neighbours recomputed at a canvas step (engine.backends.masked_forward.MARGIN; a test checks it)
STEP_MARGIN = 16
#: operations (kernel calls) per layer in transformers' eager forward, each with the probe's fixed cost
OPS_PER_LAYER = 25
#: DiffusionGemma: canvas rows (length candidates), steps and rescoring passes per request at the
#: block backend's defaults (engine/backends/block_diffusion.py BlockOptions, block_sampler.py), and
#: prompt tokens encoded again when the user typed a little (its prompt cache keeps the rest)
BLOCK_ROWS = 4
BLOCK_STEPS = 16
BLOCK_RESCORES = 2
BLOCK_CANVAS = 256
BLOCK_TYPED_TOKENS = 64


@dataclass(frozen=True)
class Forwards:
    """How a request of one use spends its forwards: ``full`` over the whole window,
    ``steps`` over the canvas only (reusing the window's keys and values)."""

    full: float
    steps: float = 0.0
    source: str = ""


#: forwards per request, by family and use ("typing": one single-line suggestion; "fill": the fill
#: command at the default 32-token canvas)
USES: dict[str, dict[str, Forwards]] = {
    # The bundled model: one full forward, then canvas steps (engine.backends.encoder_cache).
    # Measured: 3.1 forwards per completion on 40 real files (docs/BENCHMARKS.md, issue 15,
    # scripts/real-files-forwards.py); multi-line middles 1.38-1.45 tokens per forward
    # (docs/bench/quality-multi.json), so a 32-token fill takes about 23.
    "diffill": {"typing": Forwards(1, 2, "1 full + 2 canvas steps: 3.1 forwards per completion measured on "
                                          "real files (docs/BENCHMARKS.md)"),
                "fill": Forwards(1, 22, "1 full + 22 canvas steps: a 32-token canvas at the 1.4 tokens per "
                                        "forward measured on multi-line middles")},
    # Native families run the same grow sampler (threshold 0.9) with a full forward every step
    # (no canvas stepper for Qwen2/Llama networks): the same counts, all full.
    **{family: {"typing": Forwards(3, 0, "3 full forwards (the grow sampler's 3.1 per completion measured on "
                                         "real files with the bundled model; every step is a full forward)"),
                "fill": Forwards(23, 0, "23 full forwards (a 32-token canvas at 1.4 tokens per forward)")}
       for family in ("dream", "llada", "open-dcoder")},
    # DreamOn commits one position per forward and grows from 4 masks by <|expand|> (one forward
    # each): a middle of n tokens takes n + (n - 4) forwards.  n = 13 for a single line (the median
    # held-out single-line middle, engine/bench/data/heldout-single.jsonl, in the bundled tokenizer),
    # n = 32 for a fill (the canvas; held-out multi-line middles have a median of 34).
    "dreamon": {"typing": Forwards(22, 0, "13 tokens + 9 expansions, one position per forward"),
                "fill": Forwards(60, 0, "32 tokens + 28 expansions, one position per forward")},
}


@dataclass(frozen=True)
class Prediction:
    """Predicted milliseconds on one device, and what bounds the forward."""

    forward_ms: float  # one full forward over the default window
    typing_ms: float  # one single-line suggestion
    fill_ms: float  # one fill command
    bound: str  # "compute" or "memory": what dominates the full forward
    device: str
    dtype: str
    window: int

    def within(self, use: str, budget_ms: float) -> bool:
        return (self.typing_ms if use == "typing" else self.fill_ms) <= budget_ms


def arch_of(model: CatalogModel) -> Architecture | None:
    """The model's architecture from its catalog entry (None: the catalog has none)."""
    return architecture(model.architecture, model.name)


def _bytes_per(dtype: str) -> float:
    return {"float32": 4.0, "bfloat16": 2.0, "float16": 2.0, "int8": 1.0, "fp8": 1.0, "int4": 0.53}[dtype]


def cost_ms(cost: ForwardCost, rates: Rates, layers: int) -> tuple[float, str]:
    """Milliseconds of one forward of ``cost`` at ``rates``, and whether compute or memory bounds it."""
    compute = memory = 0.0
    total = 0.0
    for product in cost.products:
        flops_s = product.flops / (rates.rate(product.m, product.k) * 1e9)
        bytes_s = product.weight_bytes / (rates.bandwidth_gbs * 1e9)
        compute += flops_s
        memory += bytes_s
        total += max(flops_s, bytes_s)
    total += cost.attention_flops / (rates.attention_rate(cost.head_dim) * 1e9)
    total += cost.activation_bytes / ((rates.elementwise_gbs or rates.bandwidth_gbs) * 1e9)
    total += rates.launch_us * 1e-6 * OPS_PER_LAYER * layers
    return total * 1000.0, ("compute" if compute >= memory else "memory")


def predict(model: CatalogModel, rates: Rates, weight_dtype: str | None = None,
            window: int | None = None) -> Prediction | None:
    """Predicted times of ``model`` at ``rates`` (its device and dtype); ``weight_dtype``: the
    weights' storage when it differs from the compute dtype (int8/int4/fp8 variants).
    None when the catalog has no architecture for it or no forward count for its family."""
    arch = arch_of(model)
    if arch is None:
        return None
    window = int(window or arch.default_window)
    wb = _bytes_per(weight_dtype or rates.dtype)
    ab = _bytes_per(rates.dtype)

    def ms(rows: int, keys: int, head_rows: int) -> tuple[float, str]:
        return cost_ms(forward_cost(arch, rows, keys, head_rows, wb, ab), rates, arch.layers)

    if model.family == "diffusion-gemma":
        return _block(arch, rates, ms, window)
    uses = USES.get(model.family)
    if uses is None:
        return None
    head = min(CANVAS, window) if arch.logits == "canvas" else window
    full, bound = ms(window, window, head)
    step, _ = ms(min(CANVAS + 2 * STEP_MARGIN, window), window, min(CANVAS, window))

    def total(f: Forwards) -> float:
        return f.full * full + f.steps * step

    return Prediction(full, total(uses["typing"]), total(uses["fill"]), bound, rates.device, rates.dtype, window)


def _block(arch: Architecture, rates: Rates, ms, window: int) -> Prediction:
    """DiffusionGemma: the prompt through the encoder once (typing: only what changed), then
    ``BLOCK_STEPS`` decoder steps over ``BLOCK_ROWS`` canvases and the rescoring passes."""
    prompt = max(window - BLOCK_CANVAS, 1)
    encode, bound = ms(prompt, prompt, 0)
    typed, _ = ms(BLOCK_TYPED_TOKENS, prompt, 0)
    rows = BLOCK_ROWS * BLOCK_CANVAS
    step, step_bound = ms(rows, prompt + BLOCK_CANVAS, rows)
    denoise = (BLOCK_STEPS + BLOCK_RESCORES) * step
    return Prediction(step, typed + denoise, encode + denoise, step_bound, rates.device, rates.dtype, window)


@dataclass(frozen=True)
class ReferenceGpu:
    """A GPU this machine does not have, as its datasheet describes it (engine/models/catalog/gpus.json)."""

    name: str
    memory_gb: float
    rates: Rates


def reference_gpus() -> list[ReferenceGpu]:
    """The reference GPUs, with rates from their datasheets at the file's stated efficiency."""
    import json
    from pathlib import Path

    data = json.loads((Path(__file__).parent / "models" / "catalog" / "gpus.json").read_text())
    share = float(data["efficiency"])
    out = []
    for gpu in data["gpus"]:
        gflops = float(gpu["bf16_tflops"]) * 1000 * share
        bandwidth = float(gpu["bandwidth_gbs"]) * share
        rates = Rates(device="cuda", dtype="bfloat16", threads=0,
                      gemm={(r, i): gflops for r in (64, 2048) for i in (1024, 8192)}, bandwidth_gbs=bandwidth,
                      attention={128: gflops / 2}, elementwise_gbs=bandwidth,
                      source=f"{gpu['name']} datasheet at {share:.0%} (estimate)", launch_us=5.0)
        out.append(ReferenceGpu(gpu["name"], float(gpu["memory_gb"]), rates))
    return out
