"""The CPU's float32 matrix-product rate at the bundled model's shapes.

Why: a full forward over the 384-token window is a handful of matrix products
per layer; their rate on this machine bounds what any scheduling can save
(docs/BENCHMARKS.md, issue 15).  Shapes: (positions, hidden) x (hidden, out) for
the attention and MLP projections of ``diffill-tiny`` (hidden 384, MLP 1152,
GeGLU), at a full window (384 positions) and at a canvas step (72).  Then the
products of all 10 layers in a row, each layer with its own weights (as a
forward reads them), plain and with MKL's pre-packed weights (the private
``torch.ops.mkl`` ops PyTorch's compiler uses), with their largest difference.

    .venv/bin/python scripts/gemm-rate.py [--threads 2]
"""
from __future__ import annotations

import argparse
import time

import torch

SHAPES = [(384, 384, 1152), (384, 384, 2304), (384, 1152, 384), (384, 384, 384), (72, 384, 2304), (72, 1152, 384)]


#: (out, in) of one layer's projections: Wqkv, attention Wo, MLP Wi (GeGLU: twice 1152), MLP Wo
LAYER = [(1152, 384), (384, 384), (2304, 384), (384, 1152)]
LAYERS = 10


def median_ms(run, reps: int = 10) -> float:
    run()
    run()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return sorted(times)[reps // 2] * 1000


@torch.inference_mode()
def layers(m: int) -> tuple[float, float, float]:
    """Milliseconds of the 10 layers' products for ``m`` positions: plain, MKL pre-packed; largest difference."""
    weights = [[torch.randn(o, i) * 0.02 for o, i in LAYER] for _ in range(LAYERS)]
    packed = [[torch.ops.mkl._mkl_reorder_linear_weight(w, m) for w in layer] for layer in weights]
    inputs = {i: torch.randn(m, i) for _, i in LAYER}

    def plain() -> None:
        for layer in weights:
            for w in layer:
                torch.nn.functional.linear(inputs[w.shape[1]], w)

    def prepacked() -> None:
        for layer, packs in zip(weights, packed):
            for w, p in zip(layer, packs):
                torch.ops.mkl._mkl_linear(inputs[w.shape[1]], p, w, None, m)

    w, p = weights[0][2], packed[0][2]
    diff = (torch.nn.functional.linear(inputs[384], w) - torch.ops.mkl._mkl_linear(inputs[384], p, w, None, m))
    return median_ms(plain), median_ms(prepacked), diff.abs().max().item()


def rate(m: int, k: int, n: int) -> tuple[float, float]:
    """GFLOP/s and median milliseconds of one (m, k) x (k, n) product."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    ms = median_ms(lambda: a @ b, reps=50)
    return 2 * m * k * n / ms / 1e6, ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for m, k, n in SHAPES:
        gflops, ms = rate(m, k, n)
        print(f"({m:4d} x {k:4d}) @ ({k:4d} x {n:4d})  {gflops:6.1f} GFLOP/s  {ms:6.3f} ms")
    for m in (72, 384):
        plain, prepacked, diff = layers(m)
        print(f"{LAYERS} layers' products, {m} positions: plain {plain:.1f} ms, MKL pre-packed {prepacked:.1f} ms, "
              f"largest difference {diff:.1e}")


if __name__ == "__main__":
    main()
