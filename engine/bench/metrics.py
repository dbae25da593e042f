"""Text and timing metrics for the benchmarks: exact match, edit similarity, percentiles.

All functions are pure and dependency-free so that they can be golden-tested.
"""
from __future__ import annotations

from collections.abc import Sequence


def normalize(text: str) -> str:
    """Canonical form for exact match: trailing whitespace removed from every line,
    leading and trailing blank lines dropped.  Indentation is kept (it matters in
    Python), so ``"    x = 1\\n"`` and ``"x = 1"`` are *not* equal."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def exact_match(prediction: str, reference: str) -> bool:
    """True when both middles are equal after ``normalize``."""
    return normalize(prediction) == normalize(reference)


def levenshtein(a: str, b: str) -> int:
    """Character-level edit distance (insert, delete, substitute; cost 1 each)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def edit_similarity(prediction: str, reference: str) -> float:
    """``1 - levenshtein / max(len)`` on the normalized texts, in [0, 1];
    two empty texts are identical (1.0)."""
    a, b = normalize(prediction), normalize(reference)
    longest = max(len(a), len(b))
    if longest == 0:
        return 1.0
    return 1.0 - levenshtein(a, b) / longest


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) with linear interpolation between the
    closest ranks (numpy's default); None for no values."""
    if not values:
        return None
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be in 0..100, got {q}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def mean(values: Sequence[float]) -> float | None:
    """Arithmetic mean; None for no values."""
    return sum(values) / len(values) if values else None


def percent(flags: Sequence[bool]) -> float | None:
    """Share of true flags in percent; None for no flags."""
    return 100.0 * sum(bool(f) for f in flags) / len(flags) if flags else None


def ratio(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator``, None when the denominator is zero."""
    return numerator / denominator if denominator else None
