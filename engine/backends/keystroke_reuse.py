"""A request's first forward, reusing the keys and values a previous request kept.

Why: on the 2-core CPU a suggestion takes about three forwards, and the first,
over the whole window, is more than half of its time (docs/BENCHMARKS.md,
issue 15).  Between two keystrokes most of the window holds the same tokens,
only shifted: one more token before the cursor moves the suffix one position
on, and a full window drops a token at its start.  So the first forward of a
request runs, like a canvas step (``engine.backends.encoder_cache``), only on
the positions whose tokens changed, the canvas and their sliding-window
neighbours, and takes everyone else's keys and values from the base request:
keys rotated for their new positions from the base's keys before rotation
(``Kept.raw_keys``: exact in bfloat16 too, where rotating the rotated keys by
the shift once more was a bf16 step off), values as they are.

It is an approximation of the same kind as the canvas steps: states far from
the cursor do not see the few changed tokens.  Measured on keystroke pairs
(``scripts/keystroke-reuse.py``, docs/BENCHMARKS.md) before it was made a
default.  A base is a request whose own first forward was a full one, so the
approximation is never chained: a request that reused leaves the base in place
and is compared with it (what changed since the base is recomputed).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.backends.encoder_cache import CanvasStepper, Kept

#: how far the window's start may have slid between base and request, in tokens
MAX_SLIDE = 4
#: neighbours recomputed on each side of a changed token and of the canvas: twice the
#: sliding layers' half window.  Measured on 100 held-out keystroke pairs
#: (docs/BENCHMARKS.md): 16 lost one exact match and 0.4 edit similarity against
#: computing from scratch, 32 lost neither (8 % / 53.6 vs 8 % / 53.4)
MARGIN = 32
#: reuse only when at most this many context tokens within ``NEAR`` positions of the
#: canvas have no counterpart in the base: the further the text moved on since the
#: base, the staler the states far from the cursor (measured, docs/BENCHMARKS.md)
MAX_CHANGED = 1
NEAR = 64
#: and when at least this share of the context (prefix and suffix) is shared
MIN_SHARED = 0.75


@dataclass
class Base:
    """What a request whose first forward was full leaves for the next ones:
    its last forward's input ids and every layer's kept keys and values."""

    ids: torch.Tensor  # (padded,) long
    kept: list[Kept]
    start: int  # the canvas: [start, stop)
    stop: int
    length: int  # real (unpadded) positions


def shared_positions(base: Base, ids: torch.Tensor, start: int, stop: int, length: int) -> list[tuple[int, int]]:
    """``(new, old)`` position pairs holding the same token in the request and the base.

    The prefix (before the canvas) may start up to ``MAX_SLIDE`` tokens later or
    earlier in the base (the server's window starts a number of characters before
    the cursor, so it slides as the user types, and its first token may be cut
    differently): the slide under which most prefix tokens agree wins, and every
    position that agrees under it is shared.  The suffix (after the canvas) is
    compared from its first token the same way, without a slide.
    """
    new, old = ids.tolist(), base.ids.tolist()
    best: list[tuple[int, int]] = []
    for slide in range(-MAX_SLIDE, MAX_SLIDE + 1):
        agree = [(i, i + slide) for i in range(max(0, -slide), min(start, base.start - slide))
                 if new[i] == old[i + slide]]
        if len(agree) > len(best):
            best = agree
    pairs = best
    offset = base.stop - stop
    pairs += [(i, i + offset) for i in range(stop, min(length, base.length - offset)) if new[i] == old[i + offset]]
    return pairs


def changed_near_canvas(pairs: list[tuple[int, int]], start: int, stop: int, length: int) -> int:
    """Context tokens within ``NEAR`` positions of the canvas that have no counterpart in
    the base: what the user changed since it (a window's far edges moving matter little)."""
    shared = {i for i, _ in pairs}
    near = [*range(max(0, start - NEAR), start), *range(stop, min(length, stop + NEAR))]
    return sum(1 for i in near if i not in shared)


def worth_reusing(pairs: list[tuple[int, int]], start: int, stop: int, length: int) -> bool:
    """Whether the request is the base's text a keystroke or two on: most of its context
    shared (an unrelated request shares next to nothing) and at most ``MAX_CHANGED``
    tokens changed near the canvas."""
    context = length - (stop - start)
    return (len(pairs) >= MIN_SHARED * context
            and changed_near_canvas(pairs, start, stop, length) <= MAX_CHANGED)


def rebuilt_kept(stepper: CanvasStepper, base: Base, pairs: list[tuple[int, int]]) -> list[Kept]:
    """New keys and values for ``stepper``'s layout: the base's where a token is shared
    (keys rotated for the new position from the base's keys before rotation), zeros
    elsewhere (recomputed, or padding that is never attended to).  The base's own
    tensors are not changed."""
    device = base.kept[0].keys.device if base.kept else None
    new_at = torch.tensor([i for i, _ in pairs], dtype=torch.long, device=device)
    old_at = torch.tensor([j for _, j in pairs], dtype=torch.long, device=device)
    kept: list[Kept] = []
    for layer, old in zip(stepper.encoder.layers, base.kept, strict=True):
        if old.raw_keys is None:
            raise ValueError("a base keeps its keys before rotation (CanvasStepper keep_raw_keys)")
        batch, heads, _, dim = old.keys.shape
        keys = old.keys.new_zeros(batch, heads, stepper.length, dim)
        values = old.values.new_zeros(batch, heads, stepper.length, dim)
        raw = old.raw_keys[:, :, old_at]
        keys[:, :, new_at] = stepper.rotated_keys(raw, new_at, layer.attention_type)
        values[:, :, new_at] = old.values[:, :, old_at]
        kept.append(Kept(keys, values))  # a request that reused is never a base: no raw keys
    return kept


def positions_to_recompute(pairs: list[tuple[int, int]], start: int, stop: int, length: int,
                           margin: int) -> torch.Tensor:
    """The canvas, every real position whose token is not shared, and ``margin``
    neighbours on each side of both (their sliding-window states see them), ascending."""
    changed = torch.ones(length, dtype=torch.bool)
    if pairs:
        changed[torch.tensor([i for i, _ in pairs])] = False
    changed[start:stop] = True
    near = changed.clone()
    for offset in range(1, margin + 1):
        near[offset:] |= changed[:-offset]
        near[:-offset] |= changed[offset:]
    return near.nonzero().flatten()
