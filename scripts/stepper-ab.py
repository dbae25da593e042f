"""A/B timing of the canvas stepper: this tree's against a git revision's.

Why: a change to ``engine/backends/encoder_cache.py`` that should only make it
faster is judged by interleaved rounds on the same random window (a machine
that drifts between two separate runs would decide it otherwise), and by the
largest difference in logits between the two.

    .venv/bin/python scripts/stepper-ab.py 35cfc9b --rounds 12 --threads 2

It prints the median time of a full forward over a 384-token window and of a
72-position step, for the revision and for this tree.
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from engine.backends import encoder_cache

ROOT = Path(__file__).resolve().parents[1]


def module_at(revision: str):
    """``engine/backends/encoder_cache.py`` as it was at ``revision``, imported under another name."""
    source = subprocess.run(["git", "show", f"{revision}:engine/backends/encoder_cache.py"], cwd=ROOT,
                            check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "encoder_cache_at_revision.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("revision")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default=str(ROOT / "engine/models/diffill-tiny"))
    args = parser.parse_args()
    from transformers import AutoModelForMaskedLM

    torch.set_num_threads(args.threads)
    model = AutoModelForMaskedLM.from_pretrained(args.model, dtype=torch.float32).eval()
    ids = torch.randint(5, model.config.vocab_size, (1, 384), generator=torch.Generator().manual_seed(0))
    variants = {args.revision: module_at(args.revision), "this tree": encoder_cache}
    times: dict[tuple[str, str], list[float]] = {(name, part): [] for name in variants for part in ("full", "step")}
    for _ in range(args.rounds):
        for name, module in variants.items():
            stepper = module.CanvasStepper(model, 384, 384)
            t0 = time.perf_counter()
            stepper.full(ids, 300, 316)
            times[(name, "full")].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            stepper.step(ids, 284, 356, 300, 340)
            times[(name, "step")].append(time.perf_counter() - t0)
    for (name, part), values in times.items():
        values.sort()
        print(f"{name:>12s} {part}: median {values[len(values) // 2] * 1000:.1f} ms")
    a, b = (module.CanvasStepper(model, 384, 384).full(ids, 300, 316) for module in variants.values())
    print(f"largest logit difference: {(a - b).abs().max().item():.2e}")


if __name__ == "__main__":
    main()
