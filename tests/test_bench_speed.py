"""`bench speed`: statistics with a scripted engine, and a real `diffill` run writing JSON + PNG."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_cli_fill import diffill  # tests/ is on sys.path (rootdir-relative imports)

from engine.bench.datasets import InfillCase
from engine.bench.plot import plot_speed
from engine.bench.runs import RunSettings
from engine.bench.speed import run_speed
from engine.types import InfillRequest, InfillResult

#: starts processes or trains/loads models: left out of the quick loop (pytest -m 'not slow and not editor')
pytestmark = pytest.mark.slow


def case(task_id: str, kind: str, middle: str) -> InfillCase:
    return InfillCase(task_id=task_id, prefix=f"# {task_id}\n", suffix="\n", middle=middle, kind=kind, subset=kind)


class ScriptedEngine:
    """Parallel runs commit 4 tokens per forward; remask runs one per step.
    The parallel run gets case ``s1`` wrong."""

    def __init__(self) -> None:
        self.requests: list[InfillRequest] = []
        self.backend = SimpleNamespace()

    def infill(self, request: InfillRequest) -> InfillResult:
        self.requests.append(request)
        tokens = 8
        if request.sampler == "remask":
            return InfillResult(middle="ok", forwards=request.steps or 0, tokens=tokens, timings={"total_ms": 40.0})
        middle = "wrong" if request.prefix.startswith("# s1") else "ok"
        return InfillResult(middle=middle, forwards=2, tokens=tokens, timings={"total_ms": 10.0})


def test_speed_statistics_and_target(tmp_path: Path) -> None:
    engine = ScriptedEngine()
    cases = {"single": [case("s0", "single", "ok"), case("s1", "single", "ok")],
             "multi": [case("m0", "multi", "ok")]}
    result = run_speed(engine, cases, RunSettings(max_new_tokens=16), warmup=1)
    assert len(engine.requests) == 2 + 2 * 3  # warm-up of each run, then both runs per case
    assert {r.steps for r in engine.requests if r.sampler == "remask"} == {16}
    single, multi = result["summary"]["single"], result["summary"]["multi"]
    assert single["parallel"]["tokens_per_forward"] == 4.0
    assert single["one-per-step"]["tokens_per_forward"] == pytest.approx(8 / 16)
    assert single["parallel"]["ms_p50"] == 10.0 and single["one-per-step"]["ms_p95"] == 40.0
    assert single["parallel"]["exact_match"] == 50.0 and single["one-per-step"]["exact_match"] == 100.0
    assert single["target"]["exact_match_gap"] == -50.0 and not single["target"]["met"]
    assert multi["target"]["met"] and multi["target"]["latency_speedup_p50"] == 4.0
    png = plot_speed(result["summary"], tmp_path / "speed.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_diffill_bench_speed(tiny_model_dir: Path, tmp_path: Path) -> None:
    heldout = tmp_path / "heldout"
    heldout.mkdir()
    for kind, middle in [("single", "x = 1"), ("multi", "a = 1\nb = 2\n")]:
        rows = [{"task_id": f"{kind}{i}", "prefix": f"def f{i}():\n    ", "suffix": "\n    return 0\n",
                 "middle": middle, "kind": kind} for i in range(3)]
        (heldout / f"heldout-{kind}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out_dir = tmp_path / "out"
    proc = diffill("bench", "speed", "--model", str(tiny_model_dir), "--device", "cpu", "--heldout", str(heldout),
                   "--source", "heldout", "--limit", "2", "--warmup", "1", "--max-new-tokens", "8",
                   "--out-dir", str(out_dir))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "one-per-step" in proc.stdout
    data = json.loads((out_dir / "speed.json").read_text())
    assert (out_dir / "speed.png").read_bytes()[:4] == b"\x89PNG"
    for kind in ("single", "multi"):
        parallel, reference = data["summary"][kind]["parallel"], data["summary"][kind]["one-per-step"]
        assert parallel["n"] == reference["n"] == 2
        assert 0 < reference["tokens_per_forward"] <= 1.0 + 1e-9  # one token per forward at most
        assert parallel["tokens_per_forward"] >= reference["tokens_per_forward"]
        assert 0 < parallel["ms_p50"] <= parallel["ms_p95"]
        assert 0 <= parallel["exact_match"] <= 100
    assert all(r["forwards"] == 8 for r in data["cases"] if r["run"] == "one-per-step")


def test_diffill_bench_speed_without_data_is_one_line_error(tmp_path: Path) -> None:
    proc = diffill("bench", "speed", "--source", "humaneval", "--out-dir", str(tmp_path))
    assert proc.returncode != 0 and proc.stdout == "" and "Traceback" not in proc.stderr
    assert "--data" in proc.stderr
