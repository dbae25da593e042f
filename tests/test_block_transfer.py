"""Reading each step's results on the host without stalling the device
(``engine/backends/block_transfer.py``).

There is no GPU here, so the device is simulated: a fake event completes only
when the simulated device has got ``lag`` steps further.  The reader must then
never wait for the newest step, and the backend driven through such a reader
must give exactly what it gives with immediate reads.  With ``--device cuda``
the backend's own reads are CUDA's asynchronous copies, and one test checks them directly.
"""
from __future__ import annotations

import pytest
import torch
from block_tiny import PREFIX, SUFFIX, backend, fresh, model_dir  # noqa: F401 - fixtures

import engine.backends.block_diffusion as block_diffusion
from engine.backends.block_transfer import HostReader
from engine.engine import Engine
from engine.types import InfillRequest

#: full denoising runs per lag setting: left out of the quick loop (pytest -m 'not slow and not editor')
pytestmark = pytest.mark.slow


class FakeDevice:
    """A device that finishes a step's copy ``lag`` pushes after it was queued."""

    def __init__(self, lag: int) -> None:
        self.lag = lag
        self.clock = 0
        self.waits: list[int] = []  # ages (in steps) of the copies the host waited for


class FakeEvent:
    def __init__(self, device: FakeDevice) -> None:
        self.device = device
        self.born = device.clock
        self.forced = False

    def query(self) -> bool:
        return self.forced or self.device.clock - self.born >= self.device.lag

    def synchronize(self) -> None:
        if not self.query():
            self.device.waits.append(self.device.clock - self.born)
        self.forced = True


class LaggingReader(HostReader):
    """``HostReader`` in its asynchronous mode, on a simulated device."""

    def __init__(self, device, depth: int = 2, lag: int = 3) -> None:
        super().__init__(device, depth)
        self.asynchronous = True
        self.fake = FakeDevice(lag)

    def _copy(self, t: torch.Tensor):
        self.fake.clock += 1
        return t.clone(), FakeEvent(self.fake)


def test_the_host_never_waits_for_the_newest_step():
    reader = LaggingReader("cpu", depth=2, lag=3)
    seen = []
    for step in range(1, 9):
        reader.push(step, torch.tensor([step]))
        seen += [s for s, _ in reader.ready()]
    waits = list(reader.fake.waits)
    seen += [s for s, _ in reader.drain()]  # the end of a round waits for everything
    assert seen == list(range(1, 9))  # every step, in order
    assert waits and min(waits) >= 2  # while stepping, only for copies `depth` steps old


def test_a_fast_device_is_never_waited_for():
    reader = LaggingReader("cpu", depth=2, lag=1)
    for step in range(1, 9):
        reader.push(step, torch.tensor([step]))
        reader.ready()
    assert reader.fake.waits == []


def test_on_cuda_copies_arrive_in_pinned_host_memory_in_order(device):
    """The real asynchronous path (``--device cuda``): every step's copy lands in pinned
    host memory, in order, with the value the device computed."""
    if device != "cuda":
        pytest.skip("needs --device cuda")
    reader = HostReader(device, depth=2)
    assert reader.asynchronous
    arrived = []
    for step in range(1, 9):
        reader.push(step, torch.full((4,), step, device=device) * 2)
        arrived += reader.ready()
    arrived += reader.drain()
    assert [s for s, _ in arrived] == list(range(1, 9))
    assert all(host.device.type == "cpu" and host.is_pinned() and host.tolist() == [2 * s] * 4
               for s, host in arrived)


def test_on_the_cpu_every_step_is_read_at_once():
    reader = HostReader("cpu")
    reader.push(1, torch.tensor([1.0]))
    assert [s for s, _ in reader.ready()] == [1]


@pytest.mark.parametrize("seed", [0, 4])
def test_lagging_reads_give_the_same_fill(fresh, seed, monkeypatch):
    """Stop flags read steps late cost extra passes, never a different answer
    (stopped rows are frozen; the step budget and later rounds do not see the lag)."""
    req = InfillRequest(PREFIX, SUFFIX, language="python", max_new_tokens=16, steps=8, seed=seed)
    plain = list(Engine(fresh).stream(req))
    fresh.cache.clear()
    monkeypatch.setattr(block_diffusion, "HostReader", LaggingReader)
    lagged = list(Engine(fresh).stream(req))
    assert [(d.step, d.text, d.done) for d in lagged] == [(d.step, d.text, d.done) for d in plain]
    result = Engine(fresh).infill(req)
    assert result.timings["extra_steps"] >= 0
    assert result.forwards == (result.timings["denoise_steps"] + result.timings["extra_steps"]
                               + result.timings["rescore_passes"])
