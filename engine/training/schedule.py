"""Learning rate over a time budget: warm-up, stable, decay (WSD).

The budget is wall-clock time, not steps, because a device lease ends at a
fixed time.  A run continued with ``--init-from`` warms up again briefly and
ends with its own short decay, so every lease leaves an annealed model.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WSD:
    peak: float
    warmup_steps: int
    decay_fraction: float = 0.2  # last part of the time budget
    floor: float = 0.02  # final lr as a fraction of the peak

    def lr(self, step: int, time_fraction: float) -> float:
        if step < self.warmup_steps:
            return self.peak * (step + 1) / self.warmup_steps
        start = 1.0 - self.decay_fraction
        if time_fraction <= start:
            return self.peak
        progress = min(1.0, (time_fraction - start) / self.decay_fraction)
        return self.peak * (1.0 - (1.0 - self.floor) * progress)
