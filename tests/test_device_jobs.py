"""The device jobs (scripts/device/) in their CPU smoke modes, and what they export.

These run the same code path as the GPU lease (corpus from this machine's
installation, training loop, exports), so nothing is debugged on the device.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine import InfillRequest, load_engine
from engine.training.export import SHARD_LIMIT

#: starts processes or trains/loads models: left out of the quick loop (pytest -m 'not slow and not editor')
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
#: the public data sits in shared/ beside the checkout (CI clones next to it)
HUMANEVAL = Path(os.environ.get("DIFFILL_HUMANEVAL_DIR")
                 or Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "humaneval-infilling")


def _run(script: str, out: Path, *args: str, timeout: int = 240,
         env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, OUT=str(out), PYTHON=sys.executable, **(env_extra or {}))
    return subprocess.run(["bash", str(ROOT / "scripts" / "device" / script), *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_training_job_smoke_exports_a_model_the_engine_fills_with(tmp_path):
    first = tmp_path / "first"
    proc = _run("train.sh", first, "--smoke", "--max-files", "150")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "held-out" in proc.stdout and "corpus:" in proc.stdout  # the per-minute summary and the corpus line
    files = sorted(p.name for p in first.iterdir())
    assert len(files) <= 8 and "diffill.json" in files and "config.json" in files
    assert all((first / f).stat().st_size <= SHARD_LIMIT for f in files if f.endswith(".safetensors"))
    meta = json.loads((first / "diffill.json").read_text())
    record = meta["training"]
    assert record["final"] and record["steps"] == 40 and record["tokens"] > 0
    assert record["corpus"]["stats"]["train"] > 0 and record["corpus"]["licenses"]
    assert meta["mask_token"] == "<mask>" and meta["filler_token"] == "<eoi>"

    engine = load_engine(str(first), device="cpu")
    result = engine.infill(InfillRequest("def add(a, b):\n    return ", "\n", max_new_tokens=8))
    assert result.forwards >= 1

    # a later lease continues the same model and keeps the earlier run's record
    second = tmp_path / "second"
    proc = _run("train.sh", second, "--smoke", "--max-files", "150", "--max-steps", "5", "--init-from", str(first))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    record2 = json.loads((second / "diffill.json").read_text())["training"]
    assert record2["steps"] == 5 and record2["config"]["init_from"] == str(first)
    assert record2["previous_runs"][0]["tokens"] == record["tokens"]


def test_training_job_refuses_to_run_without_an_output_directory(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "OUT"}
    proc = subprocess.run([sys.executable, "-m", "engine.training.device_job", "--smoke"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "--out" in proc.stderr


@pytest.mark.filterwarnings("ignore")
def test_diffusiongemma_bench_smoke(tmp_path):
    pytest.importorskip("transformers.models.diffusion_gemma")
    proc = _run("bench-diffusiongemma.sh", tmp_path, "--smoke", "--skip-generate")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    results = json.loads((tmp_path / "bench-diffusiongemma-smoke.json").read_text())
    assert results["config"] == "tiny" and results["rows1"]["per_step_ms"] > 0
    assert results["single_line_fill"]["total_ms_p50"] > 0


def test_install_splits_the_record_and_keeps_the_model_card(tmp_path):
    from engine.training.install import install

    export = tmp_path / "export"
    proc = _run("train.sh", export, "--smoke", "--max-files", "100", "--max-steps", "3")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    dest = tmp_path / "bundled"
    dest.mkdir()
    (dest / "MODEL_CARD.md").write_text("card\n")
    (dest / "model-00001-of-00009.safetensors").write_text("stale")
    record = install(export, dest)
    assert record["steps"] == 3
    assert (dest / "MODEL_CARD.md").read_text() == "card\n"
    assert not (dest / "model-00001-of-00009.safetensors").exists()
    meta = json.loads((dest / "diffill.json").read_text())
    assert "training" not in meta and meta["filler_token"] == "<eoi>"
    assert json.loads((dest / "training_log.json").read_text())["steps"] == 3
    assert json.loads((dest / "corpus_licenses.json").read_text())["licenses"]
    load_engine(str(dest), device="cpu").infill(InfillRequest("x = ", "\n", max_new_tokens=4))


def test_install_refuses_a_directory_without_a_training_record(tmp_path, tiny_model_dir):
    from engine.training.install import install

    with pytest.raises(ValueError, match="training record"):
        install(tiny_model_dir, tmp_path / "dest")


def test_gpu_check_smoke_runs_every_part_from_the_carried_wheels(tmp_path):
    """scripts/device/gpu-check.sh --smoke: the lease's first call, on the CPU in float32.
    The wheels are packed here as for the device (offline: the compiled ones stay this
    environment's), installed into a --target folder that serves transformers; the
    fills reproduce the CPU float32 recording exactly; every part reports."""
    wheels, site, out = tmp_path / "wheels", tmp_path / "site", tmp_path / "out"
    proc = subprocess.run([sys.executable, "scripts/device/pack_wheels.py", "--offline", "--out", str(wheels)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert sum(w.stat().st_size for w in wheels.glob("*.whl")) < 6e6  # the tree + carry stay under 64 MiB
    humaneval = HUMANEVAL if (HUMANEVAL / "HumanEval-SingleLineInfilling.jsonl.gz").is_file() else tmp_path / "none"
    proc = _run("gpu-check.sh", out, "--smoke", "--humaneval", str(humaneval),
                env_extra={"DIFFILL_WHEELS": str(wheels), "DIFFILL_SITE": str(site)})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    data = json.loads((out / "gpu-check.json").read_text())
    assert {k: v["status"] for k, v in data["parts"].items()} == dict.fromkeys(
        ("environment", "fills", "diffusiongemma", "tests"), "done"), data.get("errors")
    assert data["environment"]["transformers_from"] == str(site)  # the packed, trimmed transformers ran it
    assert "transformers-" + data["environment"]["transformers"] in data["environment"]["carried"]
    fills = data["fills"]
    assert fills["device"] == "cpu" and fills["dtype"] == "float32" and fills["recorded_with_these_weights"]
    subsets = ["heldout-single", "single"] if humaneval == HUMANEVAL else ["heldout-single"]
    for subset in subsets:  # the recording is this computation's: every middle the same
        assert fills[subset]["cases"] == 5 and fills[subset]["agree"] == 5, fills[subset]["differences"]
    assert data["timing"]["single_line_fill"]["p50_ms"] > 0 and data["timing"]["cases_from"] == subsets[-1]
    assert data["diffusiongemma"]["canvas_step_ms"] > 0
    tests = data["tests"]
    assert tests["exit_code"] == 0 and not tests["failures"], tests.get("output_tail")
    assert tests["counts"] == {"passed": 2, "skipped": 2}  # the two CUDA-only tests skip on the CPU
    assert data["summary"]["tests"] == tests["counts"]


def test_device_cuda_runs_only_the_device_aware_tests(tmp_path):
    """pytest --device cuda (torch told a GPU is there): a test without the ``device``
    fixture is skipped, one built on it tries CUDA (and fails here, having none)."""
    (tmp_path / "fake_cuda.py").write_text("import torch\n\ntorch.cuda.is_available = lambda: True\n")
    outcomes = tmp_path / "outcomes.jsonl"
    env = dict(os.environ, DIFFILL_OUTCOMES=str(outcomes),
               PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT / "scripts" / "device")]))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "fake_cuda", "-p", "pytest_outcomes", "-p", "no:cacheprovider", "-q",
         "--device", "cuda", "tests/test_keystroke_reuse.py", "-k", "longer_prefix or rebuilt_keys"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    rows = {json.loads(line)["nodeid"].split("::")[1]: json.loads(line) for line in outcomes.read_text().splitlines()}
    assert set(rows) == {"test_shared_positions_match_the_suffix_after_a_longer_prefix",
                         "test_rebuilt_keys_are_a_fresh_forward_s_where_tokens_are_shared[float32]",
                         "test_rebuilt_keys_are_a_fresh_forward_s_where_tokens_are_shared[bfloat16]"}, proc.stdout
    skipped = rows.pop("test_shared_positions_match_the_suffix_after_a_longer_prefix")
    assert skipped["outcome"] == "skipped" and "not device-aware" in skipped["reason"]
    assert all(r["outcome"] == "failed" and r["when"] == "setup" and "cuda" in r["message"].lower()
               for r in rows.values()), rows
