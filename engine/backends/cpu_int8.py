"""int8 weights for the CPU: PyTorch dynamic quantization of every ``nn.Linear``.

Why: on the 2-core AVX2 CPU a float32 forward of the bundled model is bound by
its matrix products; int8 weights with activations quantized per call run them
about 1.6x faster (docs/BENCHMARKS.md), with the quality measured there.  The
API is PyTorch's eager dynamic quantization, deprecated in favour of torchao
but still shipped; torchao is not a dependency here.
"""
from __future__ import annotations

import warnings

import torch


def quantize_linear_int8(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with its ``nn.Linear`` layers replaced by dynamic int8 ones (in place)."""
    with warnings.catch_warnings():  # the deprecation notice names torchao, not installed here
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
