"""What /proc says about the server process: resident memory, threads, CPU time.

Linux only, read directly (no psutil): the benchmarks sample the server many
times per run and must not add threads or memory of their own to what they measure.
"""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path


def proc_status(pid: int, key: str) -> int:
    """The number after ``key:`` in /proc/PID/status (e.g. VmRSS in kB, Threads)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    raise RuntimeError(f"no {key} in /proc status")


def read_rss_kb(pid: int) -> int:
    """Resident memory in kB."""
    return proc_status(pid, "VmRSS")


def read_threads(pid: int) -> int:
    """Threads the process has now."""
    return proc_status(pid, "Threads")


def thread_names(pid: int) -> dict[str, int]:
    """Thread names (comm) and how many of each: which pool grew."""
    names: Counter[str] = Counter()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            names[(task / "comm").read_text().strip()] += 1
        except OSError:
            pass  # the thread ended meanwhile
    return dict(sorted(names.items()))


def read_cpu_s(pid: int) -> float:
    """User + system CPU seconds of the process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
