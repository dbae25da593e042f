"""Which middle lengths to denoise, and which finished middle to return.

The length of the middle is the central infill problem: the model is shown the
suffix at the position it would have after a middle of ``L`` tokens, so every
``L`` tried costs one canvas row of denoising.  The search here is adaptive:

1. a first round spreads ``rows`` lengths geometrically over ``[1, top]``
   (infill length errors are relative: a one-line fill needs ~4-16 tokens, a
   block 64+);
2. every finished row becomes a *hypothesis* (its middle as actually returned,
   i.e. cut at an end token or where it starts repeating the suffix), scored on
   clean evidence (``block_rescore``);
3. a second round, run with the denoising steps the first one's early stopping
   left over, tries the untried lengths between the best hypothesis and its
   nearest tried neighbours, the bracket where the right length must be.

``choose`` then picks among all hypotheses by score alone, except that an
empty middle must win clearly (a small model collapses to "nothing" more
readily than it writes the right thing) and a syntax check may only break
near-ties: it never overrides a clearly better score.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

#: score difference (mean log-probability, nats per scored position) that
#: counts as "clearly better": below it, a syntax check may decide
CLEAR_MARGIN = 0.25


def ladder(top: int, rows: int, low: int = 1) -> list[int]:
    """``rows`` lengths spread geometrically over ``[low, top]`` (both ends
    included when there is room), ascending and distinct."""
    top = max(int(top), 1)
    low = max(1, min(int(low), top))
    rows = max(int(rows), 1)
    if rows == 1 or top == low:
        return [top]
    out = {round(low * (top / low) ** (i / (rows - 1))) for i in range(rows)}
    return sorted(out)


def refine(tried: set[int], best: int, rows: int, top: int, low: int = 1) -> list[int]:
    """Up to ``rows`` untried lengths in the bracket around ``best``: strictly
    between the nearest tried length below it and the nearest above it (or the
    ends of ``[low, top]``), nearest to ``best`` first (in ratio: relative error
    is what matters), returned ascending."""
    below = max((t for t in tried if t < best), default=low - 1)
    above = min((t for t in tried if t > best), default=top + 1)
    free = [n for n in range(below + 1, above) if n not in tried and low <= n <= top]
    free.sort(key=lambda n: (abs(math.log(n / best)) if best > 0 else n, n))
    return sorted(free[:rows])


@dataclass(frozen=True)
class Hypothesis:
    """One finished middle: ``ids`` as returned (after cutting), the canvas row
    length it was denoised at, and what the clean rescoring made of it."""

    ids: tuple[int, ...]
    text: str
    row_length: int
    score: float = float("-inf")
    confidence: tuple[float, ...] = ()
    syntax_ok: bool | None = None

    @property
    def empty(self) -> bool:
        return not self.text.strip()


def choose(hyps: list[Hypothesis], margin: float = CLEAR_MARGIN) -> Hypothesis:
    """The hypothesis to return.

    * an empty (or whitespace-only) middle counts ``margin`` lower: it is
      returned only when the suffix right after the prefix is clearly what the
      model expects, or when nothing else was found;
    * a syntax check (when it can judge) breaks near-ties only: a parsing
      middle replaces the best one only if it scores within ``margin`` of it;
    * exact ties go to the longer middle (collapse is the common failure)."""
    if not hyps:
        raise ValueError("no hypotheses to choose from")

    def adjusted(h: Hypothesis) -> float:
        return h.score - (margin if h.empty else 0.0)

    def key(h: Hypothesis) -> tuple[float, int]:
        return adjusted(h), len(h.ids)

    best = max(hyps, key=key)
    if best.syntax_ok is False:
        close = [h for h in hyps if h.syntax_ok and adjusted(h) >= adjusted(best) - margin]
        if close:
            best = max(close, key=key)
    return best
