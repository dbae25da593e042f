"""Which forward pass each denoising step of the masked backend runs.

Why a module of its own: the step loop (``engine.backends.masked``) should
only decide what to commit; how the canvas logits are computed has three
forms, chosen once per request:

* transformers' forward over the whole window, every step (models other than
  ModernBERT);
* the canvas stepper's full forward every step (ModernBERT, ``refresh`` 1):
  the same numbers, but a cancelled request stops between layers;
* with ``refresh`` > 1, a full forward every ``refresh`` steps and in between
  only the canvas with ``MARGIN`` neighbours on each side, reusing the kept
  keys and values of everything else.

Measured (docs/BENCHMARKS.md, issue 15): recomputing only the stretch around
a growing middle's frontier instead of the whole canvas cost held-out exact
match (6 % vs 8 % on 100 cases) and saved little, because a step on the CPU
is bound by reading the weights, not by the positions it computes.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from engine.backends import encoder_cache
from engine.cancellation import CancellationToken

#: canvas neighbours recomputed with the canvas at a reusing step: the sliding
#: layers' half window, so the canvas's nearest context is fresh
MARGIN = 16


class StepForwards:
    """The forwards of one request: ``__call__(ids, step)`` returns (1, canvas, vocab) logits."""

    def __init__(self, model, plain: Callable[[torch.Tensor], torch.Tensor], *, length: int, padded: int,
                 start: int, stop: int, refresh: int, cancel: CancellationToken) -> None:
        self.plain = plain
        self.start, self.stop = start, stop
        self.length = length
        self.refresh = max(1, refresh)
        self.stepper = (encoder_cache.CanvasStepper(model, padded, length, cancel, keep=self.refresh > 1)
                        if encoder_cache.supports(model) else None)

    def __call__(self, ids: torch.Tensor, step: int) -> torch.Tensor:
        stepper, start, stop = self.stepper, self.start, self.stop
        if stepper is None:
            return self.plain(ids)
        if step % self.refresh == 0:
            return stepper.full(ids, start, stop)
        lo, hi = max(0, start - MARGIN), min(self.length, stop + MARGIN)
        return stepper.step(ids, lo, hi, start, stop)
