"""The GPU check: what a lease proves first, in one JSON file (scripts/device/gpu-check.sh).

The parts run most important first, and the JSON is rewritten after each (and
every few seconds while the tests run), so a run stopped at its time limit still
returns everything it did:

1. ``environment``: Python, torch, the GPU, and where transformers came from
   (the carried wheels, scripts/device/pack_wheels.py).
2. ``fills``: the bundled model on the device (CUDA: bfloat16) fills the shipped
   held-out single-line set and ``agreement.HUMANEVAL_CASES`` HumanEval
   single-line cases with ``bench quality``'s defaults; the middles are compared
   with the CPU float32 recording (``RECORDING``): agreement rate, every
   difference listed.  The HumanEval fills run after the held-out ones have
   warmed the device and are ``timing``'s cases (p50/p95).
3. ``diffusiongemma``: the DiffusionGemma tiny configuration's canvas step
   (engine/bench/gpu_block.py --tiny): ms per step at one row and with
   candidates, and a single-line fill.
4. ``tests``: the device-aware tests (``TESTS``) under ``pytest --device``,
   each outcome as it comes (scripts/device/pytest_outcomes.py), until the budget ends.

``--smoke`` runs the same on the CPU in float32 with a few cases and tests (CI):
its middles must then equal the recording's.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
#: the CPU float32 middles (python -m engine.bench.agreement record ..., its command inside)
RECORDING = ROOT / "docs" / "bench" / "gpu-check-cpu-float32.json"
#: where the lease finds HumanEval-Infilling (outside the tree: copied there and carried, docs/DEVICE.md)
HUMANEVAL_DIR = ROOT / "artifacts" / "humaneval"
#: the device-aware tests, most telling first (tests/conftest.py: --device)
TESTS = [
    "tests/test_encoder_cache.py",  # the canvas stepper against transformers, float32 and bf16; cancellation
    "tests/test_keystroke_reuse.py",  # a keystroke's request from the last one's keys; cancellation
    "tests/test_lsp_faults.py::test_a_full_gpu_moves_the_server_to_the_cpu",  # real CUDA out-of-memory
    "tests/test_block_transfer.py",  # asynchronous host reads, pinned memory
    "tests/test_block_cache.py",  # DiffusionGemma prompt KV cache
    "tests/test_block_diffusion.py",  # pinning, cache, cancellation, the engine contract
    "tests/test_block_length.py",  # length choice through the engine
    "tests/test_block_end_of_file.py",
    "tests/test_block_window.py",
    "tests/test_block_fixed.py",  # the fixed-shape (compilable) step
    "tests/test_family_parity.py",  # the native families against their references
]
SMOKE_TESTS = [
    "tests/test_encoder_cache.py::test_a_step_on_unchanged_input_equals_the_full_forward",
    "tests/test_block_transfer.py::test_on_cuda_copies_arrive_in_pinned_host_memory_in_order",
    "tests/test_lsp_faults.py::test_a_full_gpu_moves_the_server_to_the_cpu",
]
#: DiffusionGemma tiny-config step: on the GPU, and in the smoke (as little as runs the same code)
DG_ARGS = ["--steps", "8", "--repeat", "5", "--candidates", "4", "--prefix-tokens", "1024"]
DG_SMOKE_ARGS = ["--steps", "1", "--repeat", "1", "--candidates", "1", "--prefix-tokens", "32"]
#: by which share of the budget each part must end (the tests take what is left)
FILLS_SHARE, DG_SHARE = 0.5, 0.62
#: characters of pytest's output kept in the JSON
OUTPUT_TAIL = 4000


class Report:
    """The JSON file, rewritten whole (beside its name, then renamed) after every change."""

    def __init__(self, path: Path, started: float, budget_s: float, smoke: bool) -> None:
        self.path = path
        self.started = started
        self.data: dict[str, Any] = {"check": "gpu-check", "smoke": smoke, "budget_s": budget_s,
                                     "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
                                     "parts": {}}

    def elapsed(self) -> float:
        return time.time() - self.started

    def part(self, name: str, value: Any, status: str = "done") -> None:
        self.data[name] = value
        self.data["parts"][name] = {"status": status, "at_s": round(self.elapsed(), 1)}
        self.write()

    def write(self) -> None:
        self.data["elapsed_s"] = round(self.elapsed(), 1)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)


def environment(device: str) -> dict[str, Any]:
    import torch
    import transformers

    env: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                           "torch_cuda": torch.version.cuda, "transformers": transformers.__version__,
                           "transformers_from": str(Path(transformers.__file__).parent.parent),
                           "cuda_available": torch.cuda.is_available(), "cpu_threads": torch.get_num_threads()}
    site = os.environ.get("DIFFILL_SITE")
    if site and Path(site).is_dir():
        env["carried"] = sorted(p.name.removesuffix(".dist-info") for p in Path(site).glob("*.dist-info"))
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(0)
        free, total = torch.cuda.mem_get_info()
        env["gpu"] = {"name": props.name, "capability": f"{props.major}.{props.minor}",
                      "multiprocessors": props.multi_processor_count, "memory_gib": round(total / 2**30, 1),
                      "free_gib": round(free / 2**30, 1)}
    return env


def fills(report: Report, args: argparse.Namespace, deadline: float) -> None:
    """The bundled model's middles against the recording, and the HumanEval fills' latency."""
    import torch

    from engine import load_engine
    from engine.bench import agreement

    recording = agreement.load_recording(args.recording)
    humaneval_dir = args.humaneval if (args.humaneval / "HumanEval-SingleLineInfilling.jsonl.gz").is_file() else None
    cases = agreement.check_cases(humaneval_dir, args.heldout, args.humaneval_cases)
    t0 = time.perf_counter()
    try:
        engine = load_engine(None, device=args.device, dtype=args.dtype, threads=args.threads)
    except Exception as exc:
        # transformers >= 5.25 swaps layers for hub kernels on CUDA by default (ModernBERT's rotary:
        # kernels-community/rotary), which an offline machine cannot fetch: record the failure, then
        # see whether the rest of the path works without them (the tests inherit the setting)
        if os.environ.get("USE_HUB_KERNELS") == "0":
            raise
        report.data.setdefault("errors", {})["fills_first_load"] = f"{type(exc).__name__}: {exc}"[:2000]
        os.environ["USE_HUB_KERNELS"] = "0"
        report.data.setdefault("environment", {})["use_hub_kernels"] = "0: set after the first load failed"
        report.write()
        engine = load_engine(None, device=args.device, dtype=args.dtype, threads=args.threads)
    model = str(engine.describe()["model"])
    out: dict[str, Any] = {"device": engine.device, "dtype": engine.describe()["dtype"], "model": Path(model).name,
                           "load_s": round(time.perf_counter() - t0, 2),
                           "recording": str(args.recording.relative_to(ROOT)) if args.recording.is_relative_to(ROOT)
                           else str(args.recording)}
    # a recording holds for the weights it was made with: a retrained bundled model needs a new one
    out["recorded_with_these_weights"] = agreement.fingerprint(model) == recording.get("model_fingerprint")
    if humaneval_dir is None:
        out["humaneval"] = f"not run: {args.humaneval}/HumanEval-SingleLineInfilling.jsonl.gz is missing"
    agreement.fill(engine, cases[agreement.HELDOUT][:1])  # warm-up: kernels, allocator
    for subset, group in cases.items():
        rows = agreement.fill(engine, group, deadline=deadline)
        result = agreement.compare(rows, recording["middles"].get(subset, {}))
        result["latency"] = agreement.latency(rows)
        if len(rows) < len(group):
            result["stopped"] = f"time budget: {len(rows)} of {len(group)} cases filled"
        out[subset] = result
        report.part("fills", out, "running")
    timed = out.get(agreement.HUMANEVAL) or out[agreement.HELDOUT]
    report.data["timing"] = {"single_line_fill": timed["latency"],
                             "cases_from": agreement.HUMANEVAL if agreement.HUMANEVAL in out else agreement.HELDOUT,
                             "device": engine.device, "dtype": out["dtype"]}
    if args.device.startswith("cuda"):
        out["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    report.part("fills", out)
    del engine
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()  # the tests' processes get the memory back


def diffusiongemma(report: Report, args: argparse.Namespace) -> None:
    """engine/bench/gpu_block.py on the tiny configuration, in this process."""
    from engine.bench import gpu_block

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dg.json"
        with contextlib.redirect_stdout(io.StringIO()):  # it prints its JSON too
            gpu_block.main(["--tiny", "--device", args.device, "--skip-generate", "--out", str(path),
                            *(DG_SMOKE_ARGS if args.smoke else DG_ARGS)])
        result = json.loads(path.read_text())
    result["canvas_step_ms"] = result["rows1"]["per_step_ms"]
    report.part("diffusiongemma", result)


def tests(report: Report, args: argparse.Namespace, deadline: float) -> None:
    """pytest --device on the device-aware tests, its outcomes merged in as they come."""
    targets = args.tests or (SMOKE_TESTS if args.smoke else TESTS)
    with tempfile.TemporaryDirectory() as tmp:
        outcomes = Path(tmp) / "outcomes.jsonl"
        log = Path(tmp) / "pytest.log"
        env = dict(os.environ, DIFFILL_OUTCOMES=str(outcomes), PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",
                   PYTHONPATH=os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p))
        command = [sys.executable, "-m", "pytest", "-p", "pytest_outcomes", "-p", "pytest_asyncio.plugin",
                   "-p", "pytest_lsp", "-p", "no:cacheprovider", "-q", "-rfE", "--device", args.device, *targets]
        state: dict[str, Any] = {"command": " ".join(command[1:]), "targets": targets}
        with open(log, "w", encoding="utf-8") as out:
            proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            while proc.poll() is None:
                try:
                    proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    pass
                if time.monotonic() > deadline and proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)  # the server processes it started too
                    proc.wait()
                    state["stopped"] = "time budget: the run was stopped, the outcomes below are those it had"
                report.part("tests", summarize(outcomes, log, state, proc.returncode), "running")
        report.part("tests", summarize(outcomes, log, state, proc.returncode))


def summarize(outcomes: Path, log: Path, state: dict[str, Any], returncode: int | None) -> dict[str, Any]:
    rows = [json.loads(line) for line in outcomes.read_text().splitlines()] if outcomes.is_file() else []
    counts = Counter(r["outcome"] for r in rows)
    result = dict(state, exit_code=returncode, counts=dict(counts),
                  failures=[{k: r[k] for k in ("nodeid", "when", "message")} for r in rows if r["outcome"] == "failed"],
                  skipped=dict(Counter(r.get("reason", "") for r in rows if r["outcome"] == "skipped")),
                  passed=[r["nodeid"] for r in rows if r["outcome"] == "passed"],
                  seconds=round(sum(r["duration_s"] for r in rows), 1))
    if log.is_file():
        result["output_tail"] = log.read_text(errors="replace")[-OUTPUT_TAIL:]
    return result


def run_part(report: Report, name: str, fn, *fn_args) -> None:
    """Run one part; an exception is recorded in the JSON, and the next part still runs."""
    try:
        fn(report, *fn_args)
    except Exception as exc:  # noqa: BLE001 - the report must carry every failure, then go on
        import traceback

        report.data.setdefault("errors", {})[name] = traceback.format_exc()[-OUTPUT_TAIL:]
        report.data["parts"][name] = {"status": f"failed: {type(exc).__name__}: {exc}"[:300],
                                      "at_s": round(report.elapsed(), 1)}
        report.write()


def summary(report: Report) -> dict[str, Any]:
    """The figures a reader wants first."""
    data = report.data
    out: dict[str, Any] = {"parts": {k: v["status"] for k, v in data["parts"].items()}}
    for subset, part in (data.get("fills") or {}).items():
        if isinstance(part, dict) and "rate" in part:
            out[f"agreement_{subset}"] = f"{part['agree']}/{part['cases']}"
    timing = (data.get("timing") or {}).get("single_line_fill")
    if timing:
        out["fill_p50_ms"], out["fill_p95_ms"] = timing["p50_ms"], timing["p95_ms"]
    if data.get("diffusiongemma"):
        out["diffusiongemma_canvas_step_ms"] = data["diffusiongemma"]["canvas_step_ms"]
    if data.get("tests"):
        out["tests"] = data["tests"]["counts"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="the JSON file")
    ap.add_argument("--smoke", action="store_true", help="the CPU in float32, few cases and tests (CI)")
    ap.add_argument("--device", default=None, help="default cuda (smoke: cpu)")
    ap.add_argument("--dtype", default=None, help="default bfloat16 on cuda, float32 in the smoke")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (smoke: 1, as the recording)")
    ap.add_argument("--heldout", type=int, default=None, help="held-out cases (default all 200; smoke 5)")
    ap.add_argument("--humaneval-cases", type=int, default=None, help="of the 100 HumanEval ones (smoke 5)")
    ap.add_argument("--humaneval", type=Path, default=HUMANEVAL_DIR, help="HumanEval-Infilling folder")
    ap.add_argument("--recording", type=Path, default=RECORDING)
    ap.add_argument("--budget-s", type=float, default=140.0, help="wall-clock budget from --started")
    ap.add_argument("--started", type=float, default=None, help="epoch seconds the job began (gpu-check.sh)")
    ap.add_argument("--tests", nargs="*", default=None, help="pytest targets instead of the default set")
    args = ap.parse_args(argv)
    if args.smoke:
        args.device = args.device or "cpu"
        args.dtype = args.dtype or "float32"
        args.threads = args.threads or 1
        args.heldout = 5 if args.heldout is None else args.heldout
        args.humaneval_cases = 5 if args.humaneval_cases is None else args.humaneval_cases
    args.device = args.device or "cuda"
    args.dtype = args.dtype or ("bfloat16" if args.device.startswith("cuda") else None)
    started = args.started or time.time()
    report = Report(args.out, started, args.budget_s, args.smoke)
    clock = time.monotonic() - (time.time() - started)  # the monotonic time the job began

    run_part(report, "environment", lambda r: r.part("environment", environment(args.device)))
    run_part(report, "fills", fills, args, clock + FILLS_SHARE * args.budget_s)
    if time.monotonic() < clock + DG_SHARE * args.budget_s:
        run_part(report, "diffusiongemma", diffusiongemma, args)
    else:
        report.data["parts"]["diffusiongemma"] = {"status": "not run: time budget", "at_s": round(report.elapsed(), 1)}
    run_part(report, "tests", tests, args, clock + args.budget_s)
    report.data["summary"] = summary(report)
    report.write()
    print(json.dumps(report.data["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
