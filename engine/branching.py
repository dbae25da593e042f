"""Alternative middles from one canvas: take, at one position, the decision the model
ranked second, and denoise again only what comes after it.

Why: a user who asks for a suggestion (an invoked completion, cycling through
suggestions in the editor) is better served by a few different guesses than by
one.  Running the request again per alternative would cost a whole request each;
a masked diffusion model has already said, at every position it decided, how
likely its runner-up was (``CanvasState.other_ids``).  So an alternative is the
primary middle up to one position, the runner-up decision there (another token,
ending the middle there, or going on where the primary ended), and a fresh
denoising of the rest, all alternatives batched in the same forward passes.
The most probable runner-up decisions make the alternatives, best first.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from engine.cancellation import CancellationToken
from engine.samplers import CanvasState

#: most batched passes the alternatives get after the primary (the sampler's pace follows: the
#: rest of a branch is decided within them); chosen by measurement (docs/BENCHMARKS.md, issue 28)
PASSES = 16


@dataclass(frozen=True)
class BranchPoint:
    """Take ``token`` at ``position`` instead of the primary's choice (``probability``: the
    model's probability of it when the primary decided that position)."""

    position: int
    token: int
    probability: float


def branch_points(state: CanvasState, count: int) -> list[BranchPoint]:
    """The ``count`` most probable decisions the primary did not take, best first: one per
    decided position of the middle, and at its end (where the filler was chosen) going on."""
    if count <= 0 or state.other_ids is None or state.other_confidence is None:
        return []
    last = min(state.end(), state.ids.numel() - 1)  # the end position holds a decision too
    decided = state.committed[: last + 1] & (state.other_ids[: last + 1] != state.mask_id)
    positions = decided.nonzero().flatten()
    if positions.numel() == 0:
        return []
    probabilities = state.other_confidence[positions]
    order = torch.argsort(probabilities, descending=True, stable=True)[:count]
    return [BranchPoint(int(positions[i]), int(state.other_ids[positions[i]]), float(probabilities[i]))
            for i in order.tolist() if float(probabilities[i]) > 0.0]


def branch(state: CanvasState, point: BranchPoint) -> CanvasState:
    """The primary's state up to ``point``, the other decision there, everything after undecided."""
    out = state.clone()
    after = slice(point.position + 1, None)
    out.ids[after] = out.mask_id
    out.committed[after] = False
    out.confidence[after] = 0.0
    if out.other_ids is not None and out.other_confidence is not None:
        out.other_ids[point.position:] = out.mask_id  # a branch is not branched again
        out.other_confidence[point.position:] = 0.0
    out.ids[point.position] = point.token
    out.committed[point.position] = True
    out.confidence[point.position] = point.probability
    if out.filler_id is not None and point.token == out.filler_id:  # the middle ends here
        out.ids[point.position:] = out.filler_id
        out.committed[point.position:] = True
    return out


def denoise_branches(state: CanvasState, count: int,
                     forward: Callable[[torch.Tensor], torch.Tensor],
                     layouts: Callable[[list[CanvasState]], torch.Tensor],
                     step: Callable[[torch.Tensor, CanvasState, int], None],
                     steps: int, cancel: CancellationToken) -> tuple[list[CanvasState], int]:
    """Up to ``count`` branches of the finished ``state`` (``branch_points``), denoised
    together: each pass runs ``forward`` on the ``layouts`` of the branches still open
    and lets ``step(logits_row, branch, steps_left)`` decide for each; at most ``steps``
    passes.  Returns the branches, best first, and the passes run."""
    branches = [branch(state, point) for point in branch_points(state, count)]
    passes = 0
    for done_steps in range(steps):
        open_ = [b for b in branches if not b.done()]
        if not open_:
            break
        cancel.raise_if_cancelled()
        logits = forward(layouts(open_))
        passes += 1
        for rows, b in zip(logits, open_):
            step(rows, b, steps - done_steps)
    return branches, passes
