"""The CPU's float32 matrix-product rate at the bundled model's shapes.

Why: a full forward over the 384-token window is a handful of matrix products
per layer; their rate on this machine bounds what any scheduling can save
(docs/BENCHMARKS.md, issue 15).  Shapes: (positions, hidden) x (hidden, out) for
the attention and MLP projections of ``diffill-tiny`` (hidden 384, MLP 1152,
GeGLU), at a full window (384 positions) and at a canvas step (72).

    .venv/bin/python scripts/gemm-rate.py [--threads 2]
"""
from __future__ import annotations

import argparse
import time

import torch

SHAPES = [(384, 384, 1152), (384, 384, 2304), (384, 1152, 384), (384, 384, 384), (72, 384, 2304), (72, 1152, 384)]


def rate(m: int, k: int, n: int, reps: int = 50) -> tuple[float, float]:
    """GFLOP/s and milliseconds of one (m, k) x (k, n) product, after a warm-up."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    for _ in range(5):
        a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    seconds = (time.perf_counter() - t0) / reps
    return 2 * m * k * n / seconds / 1e9, seconds * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for m, k, n in SHAPES:
        gflops, ms = rate(m, k, n)
        print(f"({m:4d} x {k:4d}) @ ({k:4d} x {n:4d})  {gflops:6.1f} GFLOP/s  {ms:6.3f} ms")


if __name__ == "__main__":
    main()
