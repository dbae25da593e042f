"""How close a computation must come to its reference, per dtype.

Why: the engine runs bfloat16 on CPUs with bf16 units and float32 elsewhere, so
a parity test that holds only at float32 tolerances fails on the first kind of
machine.  Each numerics test says which dtype it checks:

- float32: the two computations agree to float32 rounding (``FLOAT32``).
- bfloat16: two bf16 computations of the same function round differently (bf16
  keeps 8 significant bits, a relative spacing of 2**-7 to 2**-8), so the test
  asks instead that ours is *as accurate as the reference implementation's own
  bf16 computation*: both measured against the float32 computation of the same
  (bf16-rounded) weights, ours may be off by no more than ``BF16_SLACK`` times
  the reference's error, at its worst and on average.  Measured on the tiny
  model: ours 0.0636 vs transformers' 0.0631 at worst (logits up to ~30, where
  one bf16 step is 0.125), 0.00799 vs 0.00799 on average.
"""
from __future__ import annotations

import copy

import torch

#: float32 parity: (rtol, atol) of the engine's float32 parity tests
FLOAT32 = {"rtol": 1e-4, "atol": 1e-4}
#: bfloat16: ours may be at most this much less accurate than the reference's own bf16 computation
BF16_SLACK = 1.1
DTYPES = ("float32", "bfloat16")


def float_copy(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with its (possibly bf16-rounded) weights in float32: the truth a
    bf16 forward approximates, with the same weights."""
    return copy.deepcopy(model).float()


def assert_as_accurate(ours: torch.Tensor, reference: torch.Tensor, truth: torch.Tensor,
                       slack: float = BF16_SLACK) -> None:
    """``ours`` is no further from ``truth`` than ``reference`` is, within ``slack``, at
    the worst element and on average (both bf16 computations of what ``truth`` computes in float32)."""
    ours_error = (ours.float() - truth.float()).abs()
    reference_error = (reference.float() - truth.float()).abs()
    assert reference_error.max() > 0, "the reference equals the truth: not a bf16 computation?"
    assert ours_error.max() <= slack * reference_error.max(), (
        f"worst error {ours_error.max():.4g} vs the reference's {reference_error.max():.4g}")
    assert ours_error.mean() <= slack * reference_error.mean(), (
        f"mean error {ours_error.mean():.4g} vs the reference's {reference_error.mean():.4g}")


def assert_same_computation(got: torch.Tensor, expected: torch.Tensor, dtype: str) -> None:
    """Two runs of our own code that must agree (a step on unchanged input and the
    full forward): to float32 rounding, or to bf16's (torch's bf16 defaults,
    rtol 1.6e-2 = about two bf16 steps, atol 1e-5)."""
    if dtype == "float32":
        torch.testing.assert_close(got, expected, **FLOAT32)
    else:
        assert got.dtype == torch.bfloat16 and expected.dtype == torch.bfloat16
        torch.testing.assert_close(got, expected)
