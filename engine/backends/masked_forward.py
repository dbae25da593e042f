"""Which forward pass each denoising step of the masked backend runs.

Why a module of its own: the step loop (``engine.backends.masked``) should
only decide what to commit; how the canvas logits are computed has three
forms, chosen once per request:

* transformers' forward over the whole window, every step (models other than
  ModernBERT);
* the canvas stepper's full forward every step (ModernBERT, ``refresh`` 1):
  the same numbers, but a cancelled request stops between layers;
* with ``refresh`` > 1, a full forward every ``refresh`` steps and in between
  only the positions near the growing middle's frontier (the tokens committed
  by the last step, ``BEHIND`` positions before them and ``AHEAD`` after the
  frontier), reusing the kept keys and values of everything else.  Rows of
  the canvas logits outside that stretch are stale: the step reports where the
  fresh rows end, and the sampler decides nothing past it.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from engine.backends import encoder_cache
from engine.cancellation import CancellationToken

#: positions before the last step's commits recomputed with them
BEHIND = 8
#: positions past the frontier recomputed (the most the sampler may decide in one step)
AHEAD = 8
#: canvas neighbours recomputed with a whole-canvas step (fixed-length canvases):
#: the sliding layers' half window, so the canvas's nearest context is fresh
MARGIN = 16

#: (input ids, step index, the canvas stretch the sampler needs or None) -> (logits, fresh end or None)
Forward = Callable[[torch.Tensor, int, "tuple[int, int] | None"], "tuple[torch.Tensor, int | None]"]


class StepForwards:
    """The forwards of one request; ``__call__`` returns (1, canvas, vocab) logits
    and the canvas index where fresh rows end (None: all are fresh)."""

    def __init__(self, model, plain: Callable[[torch.Tensor], torch.Tensor], *, length: int, padded: int,
                 start: int, stop: int, refresh: int, cancel: CancellationToken) -> None:
        self.plain = plain
        self.start, self.stop = start, stop
        self.length = length
        self.refresh = max(1, refresh)
        self.stepper = (encoder_cache.CanvasStepper(model, padded, length, cancel, keep=self.refresh > 1)
                        if encoder_cache.supports(model) else None)
        self.logits: torch.Tensor | None = None

    @property
    def reuses(self) -> bool:
        return self.stepper is not None and self.refresh > 1

    def __call__(self, ids: torch.Tensor, step: int, near: tuple[int, int] | None) -> tuple[torch.Tensor, int | None]:
        stepper, start, stop = self.stepper, self.start, self.stop
        if stepper is None:
            return self.plain(ids), None
        if step % self.refresh == 0 or self.logits is None:
            self.logits = stepper.full(ids, start, stop)
            return self.logits, None
        if near is None:  # the whole canvas with its neighbours
            lo, hi = max(0, start - MARGIN), min(self.length, stop + MARGIN)
            self.logits = stepper.step(ids, lo, hi, start, stop)
            return self.logits, None
        first, end = near
        fresh = stepper.step(ids, start + first, start + end, start + first, start + end)
        with torch.inference_mode():
            self.logits[:, first:end] = fresh
        return self.logits, end

    @staticmethod
    def near(previous_frontier: int, frontier: int, canvas: int) -> tuple[int, int]:
        """The canvas stretch a growing middle needs recomputed: the last step's
        commits with ``BEHIND`` positions before them, and ``AHEAD`` past the frontier."""
        return max(0, min(previous_frontier, frontier) - BEHIND), min(canvas, frontier + AHEAD)
