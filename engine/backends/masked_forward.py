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
  keys and values of everything else; and, given the ``Base`` an earlier
  request left (``engine.backends.keystroke_reuse``), a first forward over
  what changed since it instead of a full one.

Measured (docs/BENCHMARKS.md, issue 15): recomputing only the stretch around
a growing middle's frontier instead of the whole canvas cost held-out exact
match (6 % vs 8 % on 100 cases) and saved little, because a step on the CPU
is bound by reading the weights, not by the positions it computes.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from engine.backends import encoder_cache, keystroke_reuse
from engine.backends.keystroke_reuse import (
    Base,
    positions_to_recompute,
    rebuilt_kept,
    shared_positions,
    worth_reusing,
)
from engine.cancellation import CancellationToken

#: canvas neighbours recomputed with the canvas at a reusing step: the sliding
#: layers' half window, so the canvas's nearest context is fresh
MARGIN = 16


class StepForwards:
    """The forwards of one request: ``__call__(ids, step)`` returns (1, canvas, vocab) logits."""

    def __init__(self, model, plain: Callable[[torch.Tensor], torch.Tensor], *, length: int, padded: int,
                 start: int, stop: int, refresh: int, cancel: CancellationToken, base: Base | None = None,
                 leaves_base: bool = False) -> None:
        self.plain = plain
        self.start, self.stop = start, stop
        self.length = length
        self.refresh = max(1, refresh)
        self.stepper = (encoder_cache.CanvasStepper(model, padded, length, cancel, keep=self.refresh > 1,
                                                    keep_raw_keys=leaves_base)
                        if encoder_cache.supports(model) else None)
        keeps = self.stepper is not None and self.refresh > 1  # keys and values outlive a forward
        #: the earlier request whose keys and values the first forward may reuse
        self.base = base if keeps else None
        #: whether the first forward reused ``base`` (then this request is no base itself)
        self.reused = False
        #: whether a full first forward runs to its end even when cancelled (see ``_base_forward``)
        self.leaves_base = leaves_base and keeps
        self._last_ids: torch.Tensor | None = None

    def __call__(self, ids: torch.Tensor, step: int) -> torch.Tensor:
        stepper, start, stop = self.stepper, self.start, self.stop
        if stepper is None:
            return self.plain(ids)
        self._last_ids = ids
        if step == 0 and self.base is not None:
            pairs = shared_positions(self.base, ids[0], start, stop, self.length)
            if worth_reusing(pairs, start, stop, self.length):
                self.reused = True
                stepper.kept = rebuilt_kept(stepper, self.base, pairs)
                positions = positions_to_recompute(pairs, start, stop, self.length, keystroke_reuse.MARGIN)
                positions = positions.to(ids.device)
                first = int((positions < start).sum())  # the canvas is one stretch among them
                return stepper.step_at(ids, positions)[:, first:first + stop - start]
        if step == 0 and self.leaves_base:
            return self._base_forward(ids)
        if step % self.refresh == 0:
            return stepper.full(ids, start, stop)
        lo, hi = max(0, start - MARGIN), min(self.length, stop + MARGIN)
        return stepper.step(ids, lo, hi, start, stop)

    def branches(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits (B, canvas, vocab) of ``B`` layouts that differ only in the canvas
        (``engine.branching``), in one batched pass: steps with the kept context where the
        request kept one (each canvas with ``MARGIN`` neighbours), else plain forwards."""
        stepper = self.stepper
        if stepper is None or not stepper.kept:
            return self.plain(ids)
        lo, hi = max(0, self.start - MARGIN), min(self.length, self.stop + MARGIN)
        return stepper.step_branches(ids, lo, hi, self.start, self.stop)

    def _base_forward(self, ids: torch.Tensor) -> torch.Tensor:
        """The full first forward of a request that leaves a base, not stopped by cancellation.

        Why: in the editor the next keystroke cancels a request, usually during
        this forward (about 200 ms on the 2-core CPU, keys come 100-300 ms apart);
        stopped, it is lost, and the next request pays a full forward again.
        Finished, it is the next request's base, which then recomputes only what
        changed.  The caller checks the token right after it.
        """
        stepper = self.stepper
        assert stepper is not None
        cancel, stepper.cancel = stepper.cancel, None
        try:
            return stepper.full(ids, self.start, self.stop)
        finally:
            stepper.cancel = cancel

    def new_base(self) -> Base | None:
        """What this request leaves for the next: its kept keys and values, if it kept
        any and its first forward was a full one (reuse is never chained).

        Valid from the end of the first forward on: later steps update the kept
        states of the canvas and its neighbours in place (a step cancelled between
        layers leaves some layers updated), which a reusing request recomputes
        anyway, since it recomputes its own canvas with ``keystroke_reuse.MARGIN``
        neighbours."""
        stepper = self.stepper
        if (stepper is None or not stepper.kept or stepper.kept[0].raw_keys is None or self.reused
                or self._last_ids is None):
            return None
        return Base(ids=self._last_ids[0], kept=stepper.kept, start=self.start, stop=self.stop, length=self.length)
