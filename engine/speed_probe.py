"""A short measurement of this machine: matrix-product rates and memory bandwidth.

Why: the memory fit (``engine.model_fit``) says whether a model can run here, not
whether it answers in time.  A forward pass is almost all matrix products
(``engine.model_cost``), whose rate on a given CPU or GPU, in the model's dtype,
is measured here on a small grid of shapes: rows (positions) x inner size, with
a fixed output width; the bandwidth bounds products whose weights are read from
memory for few rows.  ``engine.model_speed`` turns the two into predicted times.

The probe takes well under a second on a CPU (about 0.1-0.4 s: bf16 or float32)
and is measured once per process and device/dtype/thread count (``probe``);
``diffill models list --no-probe`` and ``diffill doctor --no-probe`` skip it.
A machine that is busy with other work measures slower, as the model would run.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from functools import lru_cache

#: rows of the probe's products: a canvas step's positions and a full window's
PROBE_ROWS = (64, 512)
#: inner sizes (a model's hidden or intermediate width): a small model's, a 0.5B's, a 7B's
PROBE_INNER = (384, 1024, 4096)
#: output width of every probe product (wide enough that a kernel's tiling is what a model sees)
PROBE_OUT = 1024
#: bytes copied to measure the memory bandwidth (several times a last-level cache)
BANDWIDTH_BYTES = 128 * 1024 * 1024
#: attention probe: positions and heads of one scaled-dot-product attention, per head width
ATTENTION_POSITIONS = 512
ATTENTION_HEADS = 2
ATTENTION_HEAD_DIMS = (64, 128)
#: elementwise probe: values of one activation function (GELU) over a tensor in the model's dtype
ELEMENTWISE_VALUES = 512 * 4096
#: a GPU's shapes: large enough that a launch does not dominate
GPU_ROWS = (64, 2048)
GPU_INNER = (1024, 4096, 8192)
GPU_OUT = 4096


@dataclass(frozen=True)
class Rates:
    """What the probe measured: GFLOP/s per (rows, inner) shape, and GB/s of memory."""

    device: str  # "cpu" or "cuda"
    dtype: str  # "bfloat16", "float32", ...
    threads: int
    #: (rows, inner) -> GFLOP/s of a (rows x inner) by (inner x out) product
    gemm: dict[tuple[int, int], float]
    bandwidth_gbs: float
    #: head width -> GFLOP/s of scaled-dot-product attention (bidirectional, no mask)
    attention: dict[int, float] = field(default_factory=dict)
    #: GB/s (read + written) of an activation function over a tensor: the norms, activations and
    #: residual adds between the products run at about this rate (dtype conversions included)
    elementwise_gbs: float = 0.0
    #: seconds the probe took
    seconds: float = 0.0
    #: the machine's 1-minute load average when it ran (None where unknown)
    load: float | None = None
    #: where the figures come from ("measured" or a stated source for reference machines)
    source: str = "measured"
    #: microseconds of fixed cost per operation (a GPU kernel launch, a CPU operator's dispatch)
    launch_us: float = 0.0
    #: the share of the probe's wall time its thread had a core (CPU; 1.0 on an idle machine): the
    #: rates above are per second of CPU time, so they hold for an idle core; a forward on this
    #: machine while it stays this busy takes about 1 / share as long
    share: float = 1.0
    extra: dict[str, float] = field(default_factory=dict)

    def rate(self, rows: int, inner: int) -> float:
        """GFLOP/s for a product of ``rows`` x ``inner``: interpolated between the measured shapes
        on log scales, held at the nearest measured edge outside them."""
        rows_axis = sorted({r for r, _ in self.gemm})
        inner_axis = sorted({i for _, i in self.gemm})

        def bracket(axis: list[int], value: int) -> tuple[int, int, float]:
            if value <= axis[0]:
                return axis[0], axis[0], 0.0
            if value >= axis[-1]:
                return axis[-1], axis[-1], 0.0
            for lo, hi in zip(axis, axis[1:]):
                if lo <= value <= hi:
                    return lo, hi, (math.log(value) - math.log(lo)) / (math.log(hi) - math.log(lo))
            raise AssertionError("unreachable")  # pragma: no cover

        r0, r1, tr = bracket(rows_axis, rows)
        i0, i1, ti = bracket(inner_axis, inner)
        g = self.gemm
        low = g[(r0, i0)] * (1 - ti) + g[(r0, i1)] * ti
        high = g[(r1, i0)] * (1 - ti) + g[(r1, i1)] * ti
        return low * (1 - tr) + high * tr

    def attention_rate(self, head_dim: int) -> float:
        """GFLOP/s of attention at ``head_dim`` (the nearest measured width; the products' rate
        at a full window where the probe measured none)."""
        if not self.attention:
            return self.rate(512, 1024)
        nearest = min(self.attention, key=lambda d: (abs(math.log(d) - math.log(head_dim)), -d))
        return self.attention[nearest]

    def describe(self) -> str:
        """One line: the range of the measured rates and the bandwidth."""
        low, high = min(self.gemm.values()), max(self.gemm.values())
        load = f", load average {self.load:.1f}" if self.load is not None else ""
        if self.share < 0.9:
            load += f"; other processes took {1 - self.share:.0%} of its time"
        how = f"measured in {self.seconds:.2f} s" if self.source == "measured" else self.source
        return (f"{self.device} {self.dtype}, {self.threads} thread{'s' if self.threads != 1 else ''}: "
                f"matrix products {low:.0f}-{high:.0f} GFLOP/s, memory {self.bandwidth_gbs:.0f} GB/s "
                f"({how}{load})")


#: each shape is timed over about this long (at least one call after the warm-up)
TIMING_S = 0.01


class _Clock:
    """Times operations by this thread's CPU time (CPU) or the wall clock after a sync (GPU),
    and keeps the share of the wall time the thread had a core: on a machine busy with other
    work a CPU-bound thread runs only part of the time, which its CPU time leaves out."""

    def __init__(self, sync=None) -> None:
        self.sync = sync
        self.cpu_s = 0.0
        self.wall_s = 0.0

    def per_call_s(self, run, reps: int) -> float:
        """Seconds per ``run()``, over about ``reps`` x ``TIMING_S`` (one call at least) after a warm-up."""
        t0 = time.perf_counter()
        run()  # warm-up: kernels pick their blocking on the first call
        if self.sync:
            self.sync()
        once = max(time.perf_counter() - t0, 1e-6)
        calls = max(1, min(1000, round(reps * TIMING_S / once)))
        w0, c0 = time.perf_counter(), time.thread_time()
        for _ in range(calls):
            run()
        if self.sync:
            self.sync()
        wall, cpu = time.perf_counter() - w0, time.thread_time() - c0
        self.wall_s += wall
        self.cpu_s += cpu
        return (wall if self.sync else max(cpu, 1e-9)) / calls

    @property
    def share(self) -> float:
        """The thread's CPU time over the wall time (1.0 on a GPU and on an idle machine)."""
        if self.sync or self.wall_s <= 0:
            return 1.0
        return min(1.0, self.cpu_s / self.wall_s)


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def measure(device: str = "cpu", dtype: str = "bfloat16", threads: int | None = None, reps: int = 1) -> Rates:
    """Run the probe now (no cache): see the module doc.  ``threads`` (CPU): None picks what the
    engine's adaptive policy would pick now (``engine.threads``: fewer while other processes keep
    cores busy, measured over the bandwidth copy that runs first)."""
    import torch

    torch_dtype = getattr(torch, dtype)
    t0 = time.perf_counter()
    gpu = device.startswith("cuda")
    clock = _Clock(torch.cuda.synchronize if gpu else None)
    rows_axis, inner_axis, out = (GPU_ROWS, GPU_INNER, GPU_OUT) if gpu else (PROBE_ROWS, PROBE_INNER, PROBE_OUT)
    before = torch.get_num_threads()
    policy = None
    if not gpu:
        if threads:
            torch.set_num_threads(threads)
        else:
            from engine.threads import ThreadPolicy

            policy = ThreadPolicy(torch.set_num_threads)
    gemm: dict[tuple[int, int], float] = {}
    try:
        with torch.inference_mode():
            size = BANDWIDTH_BYTES * (2 if gpu else 1)
            src = torch.ones(size // 4, dtype=torch.float32, device=device)
            dst = torch.empty_like(src)
            seconds = clock.per_call_s(lambda: dst.copy_(src), reps)
            bandwidth = 2.0 * size / seconds / 1e9  # read + write
            src = dst = torch.empty(0, device=device)  # let the buffers go
            if policy is not None:
                policy.before_request()
            for inner in inner_axis:
                weight = torch.full((out, inner), 0.01, dtype=torch_dtype, device=device)
                for rows in rows_axis:
                    x = torch.full((rows, inner), 0.01, dtype=torch_dtype, device=device)
                    seconds = clock.per_call_s(lambda x=x, weight=weight: torch.nn.functional.linear(x, weight), reps)
                    gemm[(rows, inner)] = 2.0 * rows * inner * out / seconds / 1e9
            attention = {}
            length = ATTENTION_POSITIONS * (4 if gpu else 1)
            for head_dim in ATTENTION_HEAD_DIMS:
                q = torch.full((1, ATTENTION_HEADS, length, head_dim), 0.01, dtype=torch_dtype, device=device)
                seconds = clock.per_call_s(
                    lambda q=q: torch.nn.functional.scaled_dot_product_attention(q, q, q), reps)
                attention[head_dim] = 4.0 * length * length * head_dim * ATTENTION_HEADS / seconds / 1e9
            values = torch.full((ELEMENTWISE_VALUES,), 0.01, dtype=torch_dtype, device=device)
            seconds = clock.per_call_s(lambda: torch.nn.functional.gelu(values), reps)
            elementwise = 2.0 * values.numel() * values.element_size() / seconds / 1e9
            small = torch.ones(16, device=device)
            seconds = clock.per_call_s(lambda: small.add_(0), reps)
            launch_us = seconds * 1e6
        used = torch.get_num_threads()
    finally:
        if not gpu:
            torch.set_num_threads(before)
    return Rates(device="cuda" if gpu else "cpu", dtype=dtype, threads=used, gemm=gemm,
                 bandwidth_gbs=bandwidth, seconds=time.perf_counter() - t0, load=_load_average(),
                 launch_us=launch_us, share=clock.share, attention=attention, elementwise_gbs=elementwise)


@lru_cache(maxsize=8)
def _cached(device: str, dtype: str, threads: int | None) -> Rates:
    return measure(device, dtype, threads)


def probe(device: str = "cpu", dtype: str = "bfloat16", threads: int | None = None) -> Rates:
    """The probe's rates for ``device``/``dtype``, measured once per process (and thread count;
    None: the engine's adaptive choice, see ``measure``)."""
    return _cached("cuda" if device.startswith("cuda") else "cpu", dtype, threads)
