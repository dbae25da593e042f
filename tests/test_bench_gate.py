"""`diffill bench gate` (lsp_server.bench.gate): the confidence gate's curve from recorded results."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from lsp_server.bench.gate import Row, curve, quality_rows, real_file_rows


def test_the_curve_counts_the_shown_and_scores_them():
    rows = [Row(0.9, True, 1.0, True), Row(0.6, False, 0.5, False), Row(0.3, True, 1.0, True),
            Row(None, False, 0.0, False)]
    points = {p["threshold"]: p for p in curve(rows, (0.0, 0.5, 0.95))}
    assert points[0.0]["shown"] == 3 and points[0.0]["shown_pct"] == 75.0  # no suggestion: never shown
    assert points[0.5]["shown"] == 2 and points[0.5]["exact_pct"] == 50.0 and points[0.5]["similarity"] == 75.0
    assert points[0.5]["pass_pct"] == 50.0
    assert points[0.95]["shown"] == 0 and points[0.95]["exact_pct"] is None


def _quality(tmp_path: Path) -> Path:
    # held-out case ids of the shipped set: the gate reads their prefix and suffix
    first = json.loads((Path(__file__).resolve().parents[1] / "engine/bench/data/heldout-single.jsonl")
                       .read_text().splitlines()[0])
    case = {"task_id": first["task_id"], "subset": "heldout-single", "reference": first["middle"],
            # two lines: the server shows the first only, so the second line's token does not count
            "middle": first["middle"].rstrip("\n") + "\nextra_line()\n",
            "confidence": [0.8, 0.5, 0.01], "token_ends": [3, len(first["middle"].rstrip("\n")) + 1,
                                                           len(first["middle"].rstrip("\n")) + 14]}
    path = tmp_path / "quality.json"
    path.write_text(json.dumps({"cases": [case]}))
    return path


def test_quality_cases_are_scored_as_the_server_would_show_them(tmp_path):
    path = _quality(tmp_path)
    (row,) = quality_rows(path, "heldout-single", "gmean")
    assert row.exact and row.confidence == pytest.approx(math.sqrt(0.8 * 0.5))
    (row,) = quality_rows(path, "heldout-single", "min")
    assert row.confidence == pytest.approx(0.5)


def test_real_file_rows_take_the_server_s_confidence(tmp_path):
    path = tmp_path / "lsp.json"
    path.write_text(json.dumps({"rows": [
        {"invoked": "x = 1", "confidence": 0.7, "exact": True, "edit_similarity": 1.0},
        {"invoked": None, "confidence": None, "exact": False, "edit_similarity": None}]}))
    assert real_file_rows(path) == [Row(0.7, True, 1.0), Row(None, False, 0.0)]


def test_real_file_rows_by_measure_from_the_sent_probabilities(tmp_path):
    path = tmp_path / "lsp.json"
    path.write_text(json.dumps({"rows": [
        {"invoked": "x = 1", "confidence": 0.6, "probabilities": [0.9, 0.4], "exact": False, "edit_similarity": 0.5}]}))
    assert real_file_rows(path, "min") == [Row(0.4, False, 0.5)]
    assert real_file_rows(path, "gmean")[0].confidence == pytest.approx(0.6)


def test_the_command_prints_and_writes_the_curves(tmp_path):
    out = tmp_path / "gate.json"
    proc = subprocess.run([sys.executable, "-m", "diffill", "bench", "gate", "--quality", str(_quality(tmp_path)),
                           "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "heldout-single (gmean)" in proc.stdout and "EM among shown %" in proc.stdout
    curves = json.loads(out.read_text())["curves"]
    assert set(curves) == {"heldout-single (gmean) quality.json", "heldout-single (min) quality.json"}


def test_several_real_file_results_are_also_pooled(tmp_path):
    paths = []
    for name, exact in (("a.json", True), ("b.json", False)):
        path = tmp_path / name
        path.write_text(json.dumps({"rows": [{"invoked": "x = 1", "confidence": 0.6, "probabilities": [0.6],
                                              "exact": exact, "edit_similarity": 1.0 if exact else 0.5}]}))
        paths += ["--real-files", str(path)]
    out = tmp_path / "gate.json"
    proc = subprocess.run([sys.executable, "-m", "diffill", "bench", "gate", *paths, "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    curves = json.loads(out.read_text())["curves"]
    pooled = {p["threshold"]: p for p in curves["real files (gmean) 2 results pooled"]}
    assert pooled[0.0]["shown"] == 2 and pooled[0.0]["exact_pct"] == 50.0 and pooled[0.0]["similarity"] == 75.0
    assert curves["real files (gmean) a.json"][0]["exact_pct"] == 100.0


def test_the_plot_draws_one_line_per_set_with_the_default_ringed(tmp_path):
    pytest.importorskip("matplotlib")
    paths = []
    for name in ("a.json", "b.json"):
        path = tmp_path / name
        path.write_text(json.dumps({"rows": [{"invoked": "x = 1", "confidence": 0.9, "probabilities": [0.9],
                                              "exact": True, "edit_similarity": 1.0}]}))
        paths += ["--real-files", str(path)]
    plot = tmp_path / "gate.png"
    proc = subprocess.run([sys.executable, "-m", "diffill", "bench", "gate", *paths, "--plot", str(plot)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_gate_curves_ring_the_marked_threshold_and_skip_empty_panels(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from engine.bench import plot as plots

    drawn: list = []
    real_subplots = plt.subplots

    def keep(*args, **kwargs):
        fig, axes = real_subplots(*args, **kwargs)
        drawn.append(axes)
        return fig, axes

    points = [{"threshold": t, "shown_pct": 100 - 10 * i, "exact_pct": 5.0 + i, "pass_pct": None}
              for i, t in enumerate((0.0, 0.5, 0.8))]
    plt.subplots = keep
    try:
        plots.gate_curves({"real files": points, "other": points}, tmp_path / "g.png", marked={"real files": 0.8})
    finally:
        plt.subplots = real_subplots
    ax_em, ax_pass = drawn[0]
    curve, ring, other = ax_em.get_lines()  # the curve not named in `marked` has no ring
    assert list(curve.get_xdata()) == [100, 90, 80] and list(ring.get_xdata()) == [80]
    assert list(other.get_xdata()) == [100, 90, 80]
    assert ring.get_color() == curve.get_color() and not ax_pass.get_lines()  # no pass rates: nothing drawn
