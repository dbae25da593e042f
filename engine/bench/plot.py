"""The `bench speed` figure: tokens per forward and latency, parallel vs one token per step."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.bench.speed import RUNS
from engine.extras import MissingExtra, missing_extra_message


def pyplot(feature: str = "the `bench speed` figure") -> Any:
    """matplotlib's pyplot drawing to files (Agg); :class:`MissingExtra` naming the ``bench``
    extra when matplotlib is not installed (``diffill bench speed`` asks before it runs)."""
    try:
        import matplotlib
    except ImportError:
        raise MissingExtra(missing_extra_message(feature, "matplotlib", "bench")) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_speed(summary: dict[str, dict[str, Any]], path: Path, title: str = "") -> Path:
    """Write a PNG with two panels (tokens/forward; p50 latency with p95 whiskers)."""
    plt = pyplot()
    kinds = list(summary)
    width = 0.38
    fig, (ax_tpf, ax_ms) = plt.subplots(1, 2, figsize=(10, 4))
    for i, run in enumerate(RUNS):
        xs = [k + (i - 0.5) * width for k in range(len(kinds))]
        tpf = [summary[k][run]["tokens_per_forward"] or 0.0 for k in kinds]
        p50 = [summary[k][run]["ms_p50"] or 0.0 for k in kinds]
        p95 = [summary[k][run]["ms_p95"] or 0.0 for k in kinds]
        ax_tpf.bar(xs, tpf, width, label=run)
        ax_ms.bar(xs, p50, width, label=run,
                  yerr=[[0.0] * len(kinds), [max(0.0, b - a) for a, b in zip(p50, p95, strict=True)]], capsize=4)
    ax_tpf.axhline(3.0, color="grey", linestyle="--", linewidth=1, label="target 3")
    ax_tpf.set_ylabel("middle tokens per forward pass")
    ax_ms.set_ylabel("latency ms (bar p50, whisker p95)")
    labels = [f"{k}\nEM {_pct(summary[k][RUNS[0]]['exact_match'])} vs {_pct(summary[k][RUNS[1]]['exact_match'])}"
              for k in kinds]
    for ax in (ax_tpf, ax_ms):
        ax.set_xticks(range(len(kinds)), labels)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def gate_curves(curves: dict[str, list[dict[str, Any]]], path: Path,
                marked: dict[str, float] | None = None) -> Path:
    """The confidence gate's trade-off (``diffill bench gate``): per curve, the share of
    requests still shown against exact match (left) and pass rate (right) among the shown,
    each point a threshold; ``marked`` rings one threshold (the default) on the curves it names."""
    plt = pyplot("the `bench gate` figure")
    marked = marked or {}
    fig, (ax_em, ax_pass) = plt.subplots(1, 2, figsize=(11, 4.5))
    for name, points in curves.items():
        for ax, key in ((ax_em, "exact_pct"), (ax_pass, "pass_pct")):
            shown = [p for p in points if p[key] is not None]
            if not shown:
                continue
            [line] = ax.plot([p["shown_pct"] for p in shown], [p[key] for p in shown], marker=".", label=name)
            ring = [p for p in shown if name in marked and abs(p["threshold"] - marked[name]) < 1e-9]
            if ring:
                ax.plot([ring[0]["shown_pct"]], [ring[0][key]], marker="o", markersize=10, fillstyle="none",
                        color=line.get_color())
    ax_em.set_ylabel("exact match among the shown (%)")
    ax_pass.set_ylabel("HumanEval pass rate among the shown (%)")
    for ax in (ax_em, ax_pass):
        ax.set_xlabel("requests that get a suggestion (%)")
        ax.invert_xaxis()  # left to right: a stricter gate
        ax.grid(alpha=0.3)
        if ax.get_lines():
            ax.legend(fontsize=7)
    ringed = "; ringed: " + ", ".join(sorted({f"{t:g}" for t in marked.values()})) if marked else ""
    fig.suptitle(f"minConfidence: each point is a threshold (0, 0.05, ..., 0.95){ringed}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
