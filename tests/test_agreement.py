"""The GPU check's comparison of middles with the CPU float32 recording (engine/bench/agreement.py)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from engine.bench import agreement
from engine.bench.datasets import DEFAULT_HELDOUT_DIR, load_subset

ROOT = Path(__file__).resolve().parents[1]
RECORDING = ROOT / "docs" / "bench" / "gpu-check-cpu-float32.json"
BUNDLED = ROOT / "engine" / "models" / "diffill-tiny"
HUMANEVAL = Path(os.environ.get("DIFFILL_HUMANEVAL_DIR")
                 or Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "humaneval-infilling")


def _row(task_id: str, middle: str, ms: float = 10.0) -> dict:
    return {"task_id": task_id, "middle": middle, "ms": ms, "forwards": 3, "tokens": 2}


def test_differences_are_counted_and_listed():
    recorded = {"a": "x = 1\n", "b": "return y\n", "c": "pass\n"}
    result = agreement.compare([_row("a", "x = 1\n"), _row("b", "return z\n"), _row("c", "pass\n"),
                                _row("d", "new\n")], recorded)
    assert (result["cases"], result["agree"], result["rate"]) == (3, 2, round(2 / 3, 4))
    assert [d["task_id"] for d in result["differences"]] == ["b"]
    assert result["differences"][0]["recorded"] == "return y\n" and result["differences"][0]["got"] == "return z\n"
    assert 0 < result["differences"][0]["edit_similarity"] < 1
    assert result["not_recorded"] == ["d"]
    assert agreement.compare([], recorded)["rate"] is None


def test_latency_percentiles():
    stats = agreement.latency([_row(str(i), "", ms=float(i)) for i in range(1, 101)])
    assert stats["cases"] == 100 and stats["p50_ms"] == pytest.approx(50.5) and stats["p95_ms"] == pytest.approx(95.05)
    assert stats["max_ms"] == 100.0 and stats["forwards_p50"] == 3


def test_the_check_takes_every_held_out_case_or_an_even_spread():
    cases = agreement.check_cases(None)
    assert list(cases) == ["heldout-single"] and len(cases["heldout-single"]) == 200
    five = agreement.check_cases(None, heldout=5)["heldout-single"]
    assert [c.task_id for c in five] == [cases["heldout-single"][i * 40].task_id for i in range(5)]


def test_the_recording_holds_for_the_bundled_weights_and_every_case():
    """A retrained bundled model needs a new recording (the command is in the file)."""
    data = agreement.load_recording(RECORDING)
    assert data["model_fingerprint"] == agreement.fingerprint(BUNDLED), "re-record: " + data["command"]
    assert data["device"] == "cpu" and data["dtype"] == "float32" and data["settings"] == {
        "max_new_tokens": None, "steps": None, "sampler": "threshold", "threshold": 0.9, "seed": 0, "refresh": None}
    heldout = load_subset("heldout-single", DEFAULT_HELDOUT_DIR / "heldout-single.jsonl")
    assert set(data["middles"]["heldout-single"]) == {c.task_id for c in heldout}
    assert len(data["middles"]["single"]) == agreement.HUMANEVAL_CASES
    if (HUMANEVAL / "HumanEval-SingleLineInfilling.jsonl.gz").is_file():
        ids = [c.task_id for c in agreement.check_cases(HUMANEVAL)["single"]]
        assert list(data["middles"]["single"]) == ids
    # task ids and middles only: none of the benchmark's own text (prefixes, suffixes, tests)
    assert set(data) == {"command", "model", "model_fingerprint", "device", "dtype", "torch", "transformers",
                         "threads", "cpu", "settings", "cases", "middles"}
    assert len(json.dumps(data)) < 60_000


def test_a_fingerprint_follows_the_weights(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    before = agreement.fingerprint(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"weightz")
    assert agreement.fingerprint(tmp_path) != before and len(before) == 16
