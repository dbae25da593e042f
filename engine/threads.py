"""How many CPU threads a request gets: fewer when other processes keep cores busy.

Why: torch's CPU kernels split every matrix product across its threads and wait
for the slowest.  On a 2-core machine where a build or a browser keeps one
core busy, a two-thread forward waits on the thread that shares its core with
the other process, and runs several times slower than with one thread
(docs/BENCHMARKS.md, "latency under load").  Before each request this policy
looks at how much CPU the *other* processes used since the previous request
and leaves them their cores.  A user who sets ``threads`` gets exactly that.
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Callable

import psutil

#: the shortest interval worth measuring; a request closer to the last one keeps its count
MIN_INTERVAL_S = 0.05
#: psutil's per-CPU time fields that mean "a process at normal priority kept it busy"
#: (not idle, iowait, nice; guest time is already inside user on Linux)
BUSY_FIELDS = ("user", "system", "irq", "softirq", "steal")
#: a core counts as taken once others use this much more than a whole number of cores
#: (a quarter of a core busy is enough for a thread there to lag behind the others)
SLACK = 0.25


def usable_cores() -> int:
    """Cores this process may run on (its affinity, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_for(cores: int, others_busy: float) -> int:
    """Threads to use when other processes keep ``others_busy`` cores busy."""
    taken = max(0, math.ceil(others_busy - SLACK))
    return max(1, min(cores, cores - taken))


class ThreadPolicy:
    """Sets the thread count before each request from the CPU the rest of the
    machine used since the previous one (``psutil`` counters, no sampling thread)."""

    def __init__(self, set_threads: Callable[[int], None], cores: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._set_threads = set_threads
        self.cores = cores or usable_cores()
        self._clock = clock
        self._process = psutil.Process()
        self._last = self._sample()
        self.threads = self.cores
        self.others_busy = 0.0
        set_threads(self.threads)

    def _sample(self) -> tuple[float, float, float]:
        """(wall time, CPU seconds busy machine-wide, CPU seconds of this process).

        Niced processes' time is not counted: they yield to us (the repository
        index parses in a nice-19 worker that takes whatever the completions leave,
        measured in docs/BENCHMARKS.md, issue 14); counting it made the policy drop to
        one thread during an index build."""
        total = psutil.cpu_times()
        busy = sum(getattr(total, name, 0.0) for name in BUSY_FIELDS)
        own = self._process.cpu_times()
        return self._clock(), busy, own.user + own.system

    def before_request(self) -> int:
        """Measure, pick and set the thread count; returns it."""
        now = self._sample()
        wall = now[0] - self._last[0]
        if wall >= MIN_INTERVAL_S:
            others = max(0.0, (now[1] - self._last[1]) - (now[2] - self._last[2])) / wall
            self._last = now
            self.others_busy = others
            threads = threads_for(self.cores, others)
            if threads != self.threads:
                self._set_threads(threads)
                self.threads = threads
        return self.threads
