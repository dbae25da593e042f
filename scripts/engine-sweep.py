"""Paired engine sweep: the same held-out cases under several engine settings.

Why beside `diffill bench quality`: a speed lever is only worth taking if the
middles stay the same, and with 100 cases one exact match more or less is
noise; this script also counts how many middles are identical to the first
configuration's (the reference), which shows what a lever changes.

    .venv/bin/python scripts/engine-sweep.py '[{"name": "r1", "refresh": 1}, {"name": "r32", "refresh": 32}]' \
        --limit 100 --out bench-results/sweep.json

Each configuration may set ``refresh``, ``threshold``, ``context`` (tokens),
``dtype`` (e.g. int8), ``margin`` (engine.backends.masked_forward.MARGIN) and
``quant`` (substrings of the Linear layers to quantize to int8), ``skip`` (substrings of
Linear layers to leave in float32) and ``per_channel`` (int8 scales per output
channel instead of one per weight matrix).  Figures from it
are in docs/BENCHMARKS.md (issue 15).
"""
from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path
from typing import Any

from engine.bench.datasets import load_subset, spread, subset_path
from engine.bench.metrics import edit_similarity, exact_match, percentile
from engine.engine import Engine, load_engine
from engine.types import InfillRequest


def engine_for(cfg: dict[str, Any], cache: dict[tuple, Engine]) -> Engine:
    """One engine per (dtype, context, quantized layers), reused across configurations."""
    key = (cfg.get("dtype"), cfg.get("context"), tuple(cfg.get("quant") or ()), tuple(cfg.get("skip") or ()),
           bool(cfg.get("per_channel")))
    if key not in cache:
        engine = load_engine(None, device="cpu", dtype=cfg.get("dtype"), context_tokens=cfg.get("context"))
        if cfg.get("quant"):
            import torch

            model = engine.backend.model
            qconfig = (torch.ao.quantization.per_channel_dynamic_qconfig if cfg.get("per_channel")
                       else torch.ao.quantization.default_dynamic_qconfig)
            names = {n: qconfig for n, m in model.named_modules()
                     if isinstance(m, torch.nn.Linear) and any(part in n for part in cfg["quant"])
                     and not any(part in n for part in cfg.get("skip") or ())}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.ao.quantization.quantize_dynamic(model, names, dtype=torch.qint8, inplace=True)
        cache[key] = engine
    return cache[key]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", help="JSON list of configurations; the first is the reference")
    parser.add_argument("--subset", default="heldout-single")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("bench-results/sweep.json"))
    args = parser.parse_args()
    import engine.backends.masked_forward as masked_forward

    configs = json.loads(args.configs)
    cases = spread(load_subset(args.subset, subset_path(args.subset, None, None)), args.limit)
    engines: dict[tuple, Engine] = {}
    results: dict[str, Any] = {"subset": args.subset, "cases": len(cases), "configs": configs, "runs": {}}
    reference: list[str] | None = None
    for cfg in configs:
        engine = engine_for(cfg, engines)
        masked_forward.MARGIN = int(cfg.get("margin", 16))
        rows = []
        for case in cases:
            request = InfillRequest(prefix=case.prefix, suffix=case.suffix, max_new_tokens=32,
                                    refresh=cfg.get("refresh"), threshold=cfg.get("threshold", 0.9))
            t0 = time.perf_counter()
            result = engine.infill(request)
            rows.append({"middle": result.middle, "forwards": result.forwards,
                         "ms": (time.perf_counter() - t0) * 1000, "exact": exact_match(result.middle, case.middle),
                         "similarity": edit_similarity(result.middle, case.middle)})
        middles = [r["middle"] for r in rows]
        reference = reference or middles
        summary = {
            "exact_pct": 100 * sum(r["exact"] for r in rows) / len(rows),
            "similarity": 100 * sum(r["similarity"] for r in rows) / len(rows),
            "same_as_reference": sum(a == b for a, b in zip(middles, reference)),
            "forwards_per_case": sum(r["forwards"] for r in rows) / len(rows),
            "p50_ms": percentile([r["ms"] for r in rows], 50),
            "p95_ms": percentile([r["ms"] for r in rows], 95),
        }
        results["runs"][cfg["name"]] = {"summary": summary, "rows": rows}
        print(f"{cfg['name']:16s} EM {summary['exact_pct']:5.1f}  ES {summary['similarity']:5.1f}  "
              f"same {summary['same_as_reference']}/{len(rows)}  forwards {summary['forwards_per_case']:.2f}  "
              f"p50 {summary['p50_ms']:.0f} ms  p95 {summary['p95_ms']:.0f} ms", flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
