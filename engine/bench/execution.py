"""Run untrusted benchmark programs in a separate, resource-limited process.

Each program runs in a fresh ``python -I`` child, in its own temporary working
directory and its own session (so that a timeout kills every process it
started), with rlimits set by the child on itself before the program is
compiled:

* ``RLIMIT_AS``: address space (memory), ``memory_mb``;
* ``RLIMIT_CPU``: CPU seconds, ``timeout_s`` rounded up (the wall-clock
  timeout is enforced separately by the parent);
* ``RLIMIT_FSIZE``: largest file the program may write (stdout/stderr go to
  files in the temp directory, so output is capped too);
* ``RLIMIT_CORE``: no core dumps.

This guards against accidents (infinite loops, memory hogs, runaway output),
not against a deliberately malicious program: there is no network or
filesystem sandbox beyond the temporary working directory.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Status = Literal["passed", "failed", "timeout", "memory"]

#: Executed by the child: limit itself, then run the program as ``__main__``.
_RUNNER = r"""
import resource, sys
path, mem, cpu, fsize = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
with open(path, encoding="utf-8") as f:
    source = f.read()
sys.argv = [path]
exec(compile(source, path, "exec"), {"__name__": "__main__", "__file__": path})
"""

_DETAIL_CHARS = 2000


@dataclass(frozen=True)
class ExecResult:
    """How one program run ended; ``detail`` is the tail of its stderr."""

    status: Status
    returncode: int | None
    seconds: float
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@dataclass(frozen=True)
class Limits:
    """Resource limits for one program run."""

    timeout_s: float = 10.0
    memory_mb: int = 1024
    file_size_mb: int = 16


def run_program(source: str, limits: Limits = Limits()) -> ExecResult:
    """Execute ``source`` as a Python program; ``passed`` iff it exits with status 0."""
    with tempfile.TemporaryDirectory(prefix="diffill-exec-") as tmp:
        work = Path(tmp)
        program = work / "program.py"
        program.write_text(source, encoding="utf-8")
        argv = [
            sys.executable, "-I", "-c", _RUNNER, str(program),
            str(limits.memory_mb * 1024 * 1024),
            str(max(1, int(limits.timeout_s + 0.999))),
            str(limits.file_size_mb * 1024 * 1024),
        ]
        env = {
            "PATH": os.defpath,
            "LANG": "C.UTF-8",
            "OMP_NUM_THREADS": "1",
            "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        start = time.monotonic()
        with open(work / "stdout", "wb") as out, open(work / "stderr", "wb") as err:
            proc = subprocess.Popen(argv, cwd=work, env=env, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=err, start_new_session=True)
            timed_out = False
            try:
                proc.wait(timeout=limits.timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                _kill_group(proc)
        seconds = time.monotonic() - start
        stderr = _tail(work / "stderr")
    return ExecResult(_classify(proc.returncode, timed_out, stderr), proc.returncode, seconds, stderr)


def run_programs(sources: Iterable[str], limits: Limits = Limits(), jobs: int = 1) -> list[ExecResult]:
    """``run_program`` over many sources, ``jobs`` at a time, results in input order."""
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(lambda s: run_program(s, limits), sources))


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the child's whole session (it may have started processes of its own)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _classify(returncode: int | None, timed_out: bool, stderr: str) -> Status:
    if timed_out or returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        return "timeout"
    if "MemoryError" in stderr:
        return "memory"
    return "passed" if returncode == 0 else "failed"


def _tail(path: Path) -> str:
    data = path.read_bytes()[-_DETAIL_CHARS:]
    return data.decode("utf-8", errors="replace")
