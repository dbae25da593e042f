"""Per-step results to the host without making the accelerator wait.

The step loop needs a few small tensors on the host after every step (the
draft's tokens, the rows' stop flags).  A plain ``.cpu()`` blocks until the
device has finished the step, and the device then idles while the host reads
the result and launches the next step.  On CUDA each step's tensors are instead
copied into pinned host memory asynchronously, behind an event, and read once
the event has fired: the loop launches step ``s + 1`` before it looks at step
``s``, so the device always has queued work.  The host waits only when more
than ``depth`` copies are outstanding (it must not run unboundedly ahead of the
device: cancellation would then take effect late).

The price: the loop learns that every row has stopped up to ``depth`` steps
late, and those steps are wasted work (finished rows are frozen, so the answer
is the same).  On the CPU nothing is asynchronous and every step is read at once.
"""
from __future__ import annotations

from collections import deque

import torch


class HostReader:
    """FIFO of per-step device tensors on their way to the host."""

    def __init__(self, device, depth: int = 2) -> None:
        self.asynchronous = torch.device(device).type == "cuda"
        self.depth = max(int(depth), 1)
        self._pending: deque[tuple[int, torch.Tensor, torch.cuda.Event | None]] = deque()

    def _copy(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.cuda.Event | None]:
        """(host tensor, completion event or None when already complete)."""
        if not self.asynchronous:
            return t.cpu(), None
        host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
        host.copy_(t, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        return host, event

    def push(self, step: int, t: torch.Tensor) -> None:
        """Start copying step ``step``'s tensor; blocks only on a copy ``depth`` steps old."""
        host, event = self._copy(t)
        self._pending.append((step, host, event))
        while len(self._pending) > self.depth and (oldest := self._pending[0][2]) is not None:
            oldest.synchronize()
            self._pending[0] = (self._pending[0][0], self._pending[0][1], None)

    def ready(self) -> list[tuple[int, torch.Tensor]]:
        """Copies that have arrived, oldest first (never blocks)."""
        out = []
        while self._pending and ((event := self._pending[0][2]) is None or event.query()):
            step, host, _ = self._pending.popleft()
            out.append((step, host))
        return out

    def drain(self) -> list[tuple[int, torch.Tensor]]:
        """Everything still outstanding, waiting for it."""
        for _, _, event in self._pending:
            if event is not None:
                event.synchronize()
        out = [(step, host) for step, host, _ in self._pending]
        self._pending.clear()
        return out
