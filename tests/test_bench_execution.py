"""The execution harness: programs run in a separate, limited process."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from engine.bench.datasets import load_subset, spread
from engine.bench.execution import Limits, run_program, run_programs

#: the public data sits in shared/ beside the checkout (CI clones next to it)
HUMANEVAL = Path(os.environ.get("DIFFILL_HUMANEVAL_DIR")
                 or Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "humaneval-infilling")
FAST = Limits(timeout_s=5.0, memory_mb=512)

ADD = "def add(a, b):\n    return {body}\n\ndef check(f):\n    assert f(2, 3) == 5\n\ncheck(add)\n"


def test_correct_solution_passes() -> None:
    result = run_program(ADD.format(body="a + b"), FAST)
    assert result.passed and result.status == "passed" and result.returncode == 0


def test_wrong_solution_fails_with_the_assertion_in_detail() -> None:
    result = run_program(ADD.format(body="a - b"), FAST)
    assert result.status == "failed" and "AssertionError" in result.detail


def test_syntax_error_fails() -> None:
    assert run_program("def f(:\n", FAST).status == "failed"


def test_infinite_loop_times_out() -> None:
    start = time.monotonic()
    result = run_program("while True:\n    pass\n", Limits(timeout_s=1.0))
    assert result.status == "timeout" and not result.passed
    assert time.monotonic() - start < 10


def test_sleeping_child_processes_are_killed_on_timeout() -> None:
    source = ("import subprocess, sys, time\n"
              "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
              "time.sleep(60)\n")
    start = time.monotonic()
    assert run_program(source, Limits(timeout_s=1.0)).status == "timeout"
    assert time.monotonic() - start < 10


def test_memory_hog_is_stopped() -> None:
    source = "chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 1024 * 1024))\n"
    start = time.monotonic()
    result = run_program(source, Limits(timeout_s=20.0, memory_mb=256))
    assert result.status == "memory" and not result.passed
    assert time.monotonic() - start < 15


def test_runs_in_a_fresh_temporary_directory() -> None:
    source = ("import os\n"
              "assert os.path.basename(os.getcwd()).startswith('diffill-exec-')\n"
              "assert sorted(os.listdir()) == ['program.py', 'stderr', 'stdout']\n")
    assert run_program(source, FAST).passed


def test_file_size_is_capped() -> None:
    source = "open('big', 'wb').write(b'x' * (4 * 1024 * 1024))\n"
    assert not run_program(source, Limits(timeout_s=5.0, file_size_mb=1)).passed


def test_run_programs_keeps_order() -> None:
    results = run_programs([ADD.format(body="a + b"), ADD.format(body="0"), ADD.format(body="b + a")], FAST, jobs=2)
    assert [r.passed for r in results] == [True, False, True]


@pytest.mark.skipif(not HUMANEVAL.is_dir(), reason="HumanEval-Infilling data not present")
@pytest.mark.parametrize("subset", ["single", "multi", "random"])
def test_canonical_humaneval_solutions_pass(subset: str) -> None:
    from engine.bench.datasets import HUMANEVAL_FILES

    cases = spread(load_subset(subset, HUMANEVAL / HUMANEVAL_FILES[subset]), 3)
    results = run_programs([c.program(c.middle) for c in cases], Limits(timeout_s=10.0), jobs=2)
    assert all(r.passed for r in results), [r.detail for r in results]
    broken = run_program(cases[0].program("    raise SystemExit(3)\n"), FAST)
    assert not broken.passed
