"""Middles filled on one device and dtype against middles recorded on another.

Why: the product fills on the user's GPU in bfloat16, and every parity test of
the engine runs on the CPU.  The GPU check (scripts/device/gpu-check.sh) fills
the same cases as a CPU float32 run whose middles are recorded in the tree
(docs/bench/gpu-check-cpu-float32.json) and reports how many agree and which differ: a device or layout
bug shows as most middles differing, bf16 rounding as a few near-ties flipping.
Only task ids and middles are recorded, never a benchmark's own text.

The cases: the shipped held-out single-line set (all 200) and ``HUMANEVAL_CASES``
HumanEval single-line cases spread evenly over its 1,033; the settings are
``bench quality``'s defaults (``RunSettings()``), so a recording is what that
command would fill.

    python -m engine.bench.agreement record --data ../shared/benchmarks/humaneval-infilling \
        --out docs/bench/gpu-check-cpu-float32.json
"""
from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from engine.bench import metrics
from engine.bench.datasets import DEFAULT_HELDOUT_DIR, HUMANEVAL_FILES, InfillCase, load_subset, spread
from engine.bench.runs import RunSettings, request_for, run_case

#: HumanEval single-line cases in the check (evenly spaced)
HUMANEVAL_CASES = 100
HELDOUT, HUMANEVAL = "heldout-single", "single"
#: ``bench quality``'s defaults: what the recording and the check both fill with
DEFAULTS = RunSettings()


def check_cases(humaneval_dir: Path | None, heldout: int | None = None, humaneval: int | None = None,
                heldout_dir: Path = DEFAULT_HELDOUT_DIR) -> dict[str, list[InfillCase]]:
    """The check's cases per subset: every held-out single-line case (or ``heldout`` of
    them, evenly spaced) and the ``HUMANEVAL_CASES`` HumanEval ones (or ``humaneval`` of
    those), the latter only where ``humaneval_dir`` holds HumanEval-Infilling."""
    cases = {HELDOUT: spread(load_subset(HELDOUT, heldout_dir / "heldout-single.jsonl"), heldout)}
    if humaneval_dir is not None:
        path = Path(humaneval_dir) / HUMANEVAL_FILES[HUMANEVAL]
        recorded = spread(load_subset(HUMANEVAL, path), HUMANEVAL_CASES)
        cases[HUMANEVAL] = spread(recorded, humaneval)
    return cases


def fill(engine: Any, cases: list[InfillCase], settings: RunSettings = DEFAULTS,
         deadline: float | None = None) -> list[dict[str, Any]]:
    """Fill each case with ``bench quality``'s request; stops early (fewer rows) at
    ``deadline`` (``time.monotonic()``)."""
    rows = []
    for case in cases:
        if deadline is not None and time.monotonic() > deadline:
            break
        run = run_case(engine, request_for(case, settings))
        rows.append({"task_id": case.task_id, "middle": run.middle, "ms": run.ms, "forwards": run.forwards,
                     "tokens": run.tokens})
    return rows


def compare(rows: list[dict[str, Any]], recorded: dict[str, str]) -> dict[str, Any]:
    """How many filled middles equal the recorded ones (exactly), and each difference."""
    differences, missing = [], []
    for row in rows:
        if row["task_id"] not in recorded:
            missing.append(row["task_id"])
            continue
        want = recorded[row["task_id"]]
        if row["middle"] != want:
            differences.append({"task_id": row["task_id"], "recorded": want, "got": row["middle"],
                                "edit_similarity": round(metrics.edit_similarity(row["middle"], want), 3)})
    compared = len(rows) - len(missing)
    return {"cases": compared, "agree": compared - len(differences),
            "rate": round((compared - len(differences)) / compared, 4) if compared else None,
            "differences": differences, "not_recorded": missing}


def latency(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """p50/p95 of the fills' engine time (``total_ms``) and their forwards."""
    ms = [float(r["ms"]) for r in rows]
    forwards = [float(r["forwards"]) for r in rows]

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 2)

    return {"cases": len(rows), "p50_ms": rounded(metrics.percentile(ms, 50)),
            "p95_ms": rounded(metrics.percentile(ms, 95)), "mean_ms": rounded(metrics.mean(ms)),
            "max_ms": rounded(max(ms)) if ms else None, "forwards_p50": metrics.percentile(forwards, 50)}


def fingerprint(model_dir: str | Path) -> str:
    """A short hash of a model directory's weights: a recording holds for these weights only."""
    digest = hashlib.sha256()
    for shard in sorted(Path(model_dir).glob("*.safetensors")):
        digest.update(shard.name.encode())
        with open(shard, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def cpu_name() -> str:
    """The CPU's model name where Linux tells it, else the architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def load_recording(path: Path) -> dict[str, Any]:
    """The recorded run: ``{"middles": {subset: {task_id: middle}}, ...}``."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data.get("middles"), dict):
        raise ValueError(f"{path}: no middles recorded")
    return data


def record(engine: Any, cases: dict[str, list[InfillCase]], command: str) -> dict[str, Any]:
    """A recording of ``engine``'s middles for ``cases`` (task ids and middles only)."""
    import torch
    import transformers

    model = str(engine.describe()["model"])
    middles = {subset: {r["task_id"]: r["middle"] for r in fill(engine, group)} for subset, group in cases.items()}
    return {"command": command, "model": Path(model).name, "model_fingerprint": fingerprint(model),
            "device": engine.device, "dtype": engine.describe()["dtype"], "torch": torch.__version__,
            "transformers": transformers.__version__, "threads": torch.get_num_threads(), "cpu": cpu_name(),
            "settings": asdict(DEFAULTS), "cases": {subset: len(group) for subset, group in middles.items()},
            "middles": middles}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m engine.bench.agreement", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="record the bundled model's CPU float32 middles")
    rec.add_argument("--data", type=Path, required=True, help="HumanEval-Infilling directory")
    rec.add_argument("--out", type=Path, required=True)
    rec.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)

    from engine import load_engine

    engine = load_engine(None, device="cpu", dtype="float32", threads=args.threads)
    command = "python -m engine.bench.agreement " + " ".join(argv if argv is not None else sys.argv[1:])
    data = record(engine, check_cases(args.data), command)
    args.out.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{args.out}: " + ", ".join(f"{n} {s}" for s, n in data["cases"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
