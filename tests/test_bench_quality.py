"""`bench quality`: datasets, scoring with a scripted engine, and a real `diffill` run."""
from __future__ import annotations

import gzip
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_cli_fill import diffill  # tests/ is on sys.path (rootdir-relative imports)

from engine.bench.datasets import DatasetError, load_subset, parse_subsets, spread
from engine.bench.execution import Limits
from engine.bench.quality import QualityOptions, run_quality
from engine.bench.runs import RunSettings
from engine.types import InfillRequest, InfillResult

#: starts processes or trains/loads models: left out of the quick loop (pytest -m 'not slow and not editor')
pytestmark = pytest.mark.slow

HUMANEVAL_ROWS = {
    "single": [
        {"task_id": "SingleLineInfilling/T/0/L0", "entry_point": "add", "prompt": "def add(a, b):\n",
         "suffix": "", "canonical_solution": "    return a + b\n", "test": "def check(f):\n    assert f(2, 3) == 5\n"},
        {"task_id": "SingleLineInfilling/T/1/L0", "entry_point": "neg", "prompt": "def neg(a):\n",
         "suffix": "", "canonical_solution": "    return -a\n", "test": "def check(f):\n    assert f(2) == -2\n"},
    ],
    "multi": [
        {"task_id": "MultiLineInfilling/T/2/L0_L2", "entry_point": "fact", "prompt": "def fact(n):\n",
         "suffix": "    return r\n", "canonical_solution": "    r = 1\n    for i in range(2, n + 1):\n        r *= i\n",
         "test": "def check(f):\n    assert f(5) == 120\n"},
    ],
}
HELDOUT_ROWS = [
    {"task_id": "h0", "prefix": "x = ", "suffix": "\n", "middle": "1", "kind": "single"},
    {"task_id": "h1", "prefix": "y = ", "suffix": "\n", "middle": "2", "kind": "single"},
]


@pytest.fixture()
def data_dirs(tmp_path: Path) -> tuple[Path, Path]:
    humaneval, heldout = tmp_path / "humaneval", tmp_path / "heldout"
    humaneval.mkdir()
    heldout.mkdir()
    for subset, name in [("single", "HumanEval-SingleLineInfilling.jsonl.gz"),
                         ("multi", "HumanEval-MultiLineInfilling.jsonl.gz")]:
        with gzip.open(humaneval / name, "wt", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in HUMANEVAL_ROWS[subset])
    (heldout / "heldout-single.jsonl").write_text("".join(json.dumps(r) + "\n" for r in HELDOUT_ROWS))
    return humaneval, heldout


class ScriptedEngine:
    """Answers each prefix with a fixed middle; ``n`` characters ~ one token."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.requests: list[InfillRequest] = []
        self.backend = SimpleNamespace(count_tokens=len)

    def infill(self, request: InfillRequest) -> InfillResult:
        self.requests.append(request)
        middle = self.answers[request.prefix]
        if request.fixed_length:
            middle = middle[: request.max_new_tokens]
        return InfillResult(middle=middle, forwards=2, tokens=len(middle), timings={"total_ms": 5.0})


def test_parse_subsets_and_spread() -> None:
    assert parse_subsets("single, heldout,single") == ["single", "heldout-single", "heldout-multi"]
    with pytest.raises(DatasetError, match="unknown subset"):
        parse_subsets("single,bogus")
    assert spread(list(range(10)), 3) == [0, 3, 6]  # type: ignore[arg-type]
    assert spread(list(range(3)), None) == [0, 1, 2]  # type: ignore[arg-type]


def test_load_subsets(data_dirs: tuple[Path, Path]) -> None:
    humaneval, heldout = data_dirs
    single = load_subset("single", humaneval / "HumanEval-SingleLineInfilling.jsonl.gz")
    assert [c.task_id for c in single] == ["SingleLineInfilling/T/0/L0", "SingleLineInfilling/T/1/L0"]
    assert single[0].executable and single[0].middle == "    return a + b\n"
    held = load_subset("heldout-single", heldout / "heldout-single.jsonl")
    assert held[1].middle == "2" and not held[1].executable
    (heldout / "bad.jsonl").write_text('{"task_id": "x"}\n')
    with pytest.raises(DatasetError, match="bad row"):
        load_subset("heldout-multi", heldout / "bad.jsonl")


def test_scores_with_oracle_gap(data_dirs: tuple[Path, Path]) -> None:
    humaneval, heldout = data_dirs
    subsets = {
        "single": load_subset("single", humaneval / "HumanEval-SingleLineInfilling.jsonl.gz"),
        "multi": load_subset("multi", humaneval / "HumanEval-MultiLineInfilling.jsonl.gz"),
        "heldout-single": load_subset("heldout-single", heldout / "heldout-single.jsonl"),
    }
    answers = {
        "def add(a, b):\n": "    return a + b\n",  # right
        "def neg(a):\n": "    return a\n",  # wrong
        # runs, but not exact:
        "def fact(n):\n": "    r = 1\n    for i in range(2, n + 1):\n        r *= i\n    extra = 0\n",
        "x = ": "1",
        "y = ": "3",
    }
    engine = ScriptedEngine(answers)
    result = run_quality(engine, subsets, RunSettings(), QualityOptions(oracle=True, limits=Limits(timeout_s=5)))
    single, multi, held = (result["summary"][k] for k in ("single", "multi", "heldout-single"))
    assert single["n"] == 2 and single["pass@1"] == 50.0 and single["exact_match"] == 50.0
    assert multi["pass@1"] == 100.0 and multi["exact_match"] == 0.0 and 0 < multi["edit_similarity"] < 100
    # the oracle canvas cuts the extra line off: exact, so the gap is +100 points
    assert multi["oracle"]["exact_match"] == 100.0 and multi["gap"]["exact_match"] == 100.0
    assert held["pass@1"] is None and held["exact_match"] == 50.0
    assert single["tokens_per_forward"] == pytest.approx((17 + 13) / 4)
    assert single["ms_p50"] == 5.0
    normal = [r for r in engine.requests if not r.fixed_length]
    assert {r.max_new_tokens for r in normal if r.prefix == "def fact(n):\n"} == {128}
    oracle = [r for r in engine.requests if r.fixed_length]
    assert {r.prefix: r.max_new_tokens for r in oracle}["x = "] == 1
    rows = {r["task_id"]: r for r in result["cases"]}
    assert rows["SingleLineInfilling/T/1/L0"]["status"] == "failed"


def test_oracle_skipped_without_tokenizer(data_dirs: tuple[Path, Path]) -> None:
    _, heldout = data_dirs
    engine = ScriptedEngine({"x = ": "1", "y = ": "2"})
    engine.backend = SimpleNamespace()
    result = run_quality(engine, {"heldout-single": load_subset("heldout-single", heldout / "heldout-single.jsonl")},
                         RunSettings(max_new_tokens=8), QualityOptions(oracle=True))
    assert "oracle" not in result["summary"]["heldout-single"] and result["notes"]
    assert result["summary"]["heldout-single"]["exact_match"] == 100.0


def test_diffill_bench_quality(tiny_model_dir: Path, data_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    humaneval, heldout = data_dirs
    out = tmp_path / "results.json"
    proc = diffill("bench", "quality", "--model", str(tiny_model_dir), "--device", "cpu",
                   "--data", str(humaneval), "--heldout", str(heldout), "--subsets", "single,multi,heldout-single",
                   "--limit", "2", "--max-new-tokens", "8", "--oracle", "--out", str(out), "--timeout", "5")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "subset" in proc.stdout and "heldout-single" in proc.stdout
    data = json.loads(out.read_text())
    assert data["benchmark"] == "quality" and data["oracle"] is True
    assert set(data["summary"]) == {"single", "multi", "heldout-single"}
    for summary in data["summary"].values():
        assert 0 <= summary["exact_match"] <= 100 and 0 <= summary["edit_similarity"] <= 100
        assert summary["tokens_per_forward"] > 0 and summary["ms_p50"] > 0
        assert "gap" in summary
    assert data["summary"]["single"]["n"] == 2 and 0 <= data["summary"]["single"]["pass@1"] <= 100
    assert len(data["cases"]) == 5
    assert all(c["forwards"] >= 1 and c["max_new_tokens"] == 8 for c in data["cases"])


def test_diffill_bench_quality_unavailable_subset_is_one_line_error(tmp_path: Path) -> None:
    proc = diffill("bench", "quality", "--subsets", "single", "--model", str(tmp_path))
    assert proc.returncode != 0 and proc.stdout == "" and "Traceback" not in proc.stderr
    assert "--data" in proc.stderr
