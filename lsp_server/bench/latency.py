"""Latency figures in the shape both benchmarks report them.

Percentiles come from ``engine.bench.metrics.percentile`` (0..100, None for no
values); the reports keep their own conventions on top of it: a summary holds
NaN for an empty list, a sample holds null.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from engine.bench.metrics import percentile


def percentile_or_nan(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100); NaN for no values (a failed comparison, never a pass)."""
    value = percentile(values, q)
    return math.nan if value is None else value


def summary(values: Sequence[float]) -> dict[str, float]:
    """p50, p95 and mean (ms, 3 decimals; NaN when empty) and the count."""
    return {"p50": round(percentile_or_nan(values, 50), 3), "p95": round(percentile_or_nan(values, 95), 3),
            "mean": round(statistics.fmean(values), 3) if values else math.nan, "n": len(values)}


def rounded(value: float | None) -> float | None:
    """``value`` to 2 decimals; None stays None (JSON null)."""
    return None if value is None else round(value, 2)
