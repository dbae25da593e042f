"""The adaptive CPU thread policy (engine.threads)."""
from __future__ import annotations

import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from engine import threads as policy_module
from engine.threads import ThreadPolicy, threads_for


@pytest.mark.parametrize(("cores", "others", "expected"), [
    (2, 0.0, 2), (2, 0.2, 2), (2, 0.4, 1), (2, 1.0, 1), (2, 3.0, 1),
    (8, 0.0, 8), (8, 1.3, 6), (8, 2.1, 6), (1, 0.9, 1),
])
def test_threads_leave_the_others_their_cores(cores, others, expected):
    assert threads_for(cores, others) == expected


class FakeMachine:
    """psutil's counters, advanced by hand: busy CPU seconds machine-wide and ours."""

    def __init__(self) -> None:
        self.busy = 0.0
        self.nice = 0.0
        self.own = 0.0
        self.now = 0.0

    def cpu_times(self):
        return _Times(self.busy, self.nice)

    def Process(self):  # psutil's name
        return SimpleNamespace(cpu_times=lambda: SimpleNamespace(user=self.own, system=0.0))


def _Times(busy: float, nice: float = 0.0) -> SimpleNamespace:
    """psutil.cpu_times(): named CPU-second counters."""
    return SimpleNamespace(user=busy, nice=nice, system=0.0, idle=100.0, iowait=0.0, irq=0.0, softirq=0.0,
                           steal=0.0, guest=0.0, guest_nice=0.0)


def test_the_policy_follows_what_other_processes_use(monkeypatch):
    machine = FakeMachine()
    monkeypatch.setattr(policy_module, "psutil", machine)
    chosen: list[int] = []
    policy = ThreadPolicy(chosen.append, cores=2, clock=lambda: machine.now)
    assert chosen == [2]
    # one second in which we used 1.5 CPU seconds and nobody else did
    machine.now, machine.busy, machine.own = 1.0, 1.5, 1.5
    assert policy.before_request() == 2 and chosen == [2]
    # one second in which another process kept a core busy
    machine.now, machine.busy, machine.own = 2.0, 3.5, 2.5
    assert policy.before_request() == 1 and chosen == [2, 1]
    assert policy.others_busy == pytest.approx(1.0)
    # too soon to measure again: the count stays
    machine.now, machine.busy = 2.01, 3.52
    assert policy.before_request() == 1 and chosen == [2, 1]
    # the other process stopped
    machine.now, machine.busy, machine.own = 3.0, 4.0, 3.0
    assert policy.before_request() == 2 and chosen == [2, 1, 2]
    # a niced process (the repository index's worker) used two cores: it yields to us
    machine.now, machine.nice = 4.0, 2.0
    assert policy.before_request() == 2 and chosen == [2, 1, 2]


def test_a_real_busy_process_is_seen():
    chosen: list[int] = []
    policy = ThreadPolicy(chosen.append, cores=2)
    spin = "import time\nend = time.time() + 0.8\nwhile time.time() < end: pass"
    busy = subprocess.Popen([sys.executable, "-c", spin])
    try:
        time.sleep(0.6)
        policy.before_request()
    finally:
        busy.wait()
    assert policy.others_busy > 0.4
    assert policy.threads == 1


def test_the_engine_uses_the_policy_only_when_threads_are_left_open(tiny_model_dir):
    import torch

    from engine import load_engine

    before = torch.get_num_threads()
    try:
        assert load_engine(str(tiny_model_dir), device="cpu").threads is not None
        assert load_engine(str(tiny_model_dir), device="cpu", threads=1).threads is None
    finally:
        torch.set_num_threads(before)
