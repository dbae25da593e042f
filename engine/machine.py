"""What this machine offers a model: GPU memory, RAM and disk, in GB (10^9 bytes).

Read fresh on each call (memory changes while the server runs).  Torch is only
imported when it is already importable; a broken CUDA setup reads as "no GPU".
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from engine.errors import DeviceError

GB = 1e9


@dataclass(frozen=True)
class Gpu:
    name: str
    total_gb: float
    free_gb: float


@dataclass(frozen=True)
class Machine:
    gpus: tuple[Gpu, ...]
    ram_total_gb: float
    ram_available_gb: float
    cpu_fast_bf16: bool

    @property
    def gpu(self) -> Gpu | None:
        """The first GPU (the one ``--device cuda`` uses)."""
        return self.gpus[0] if self.gpus else None


def _meminfo() -> dict[str, float]:
    values: dict[str, float] = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                values[key] = int(parts[0]) * 1024 / GB
    except OSError:
        pass
    return values


def _gpus() -> tuple[Gpu, ...]:
    try:
        import torch

        if not torch.cuda.is_available():
            return ()
        found = []
        for index in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(index)
            found.append(Gpu(torch.cuda.get_device_name(index), total / GB, free / GB))
        return tuple(found)
    except Exception:  # noqa: BLE001 - any CUDA failure means no usable GPU
        return ()


#: "1" or "0": answer ``cpu_has_fast_bf16`` as told instead of reading the CPU's flags, so that
#: one machine can run what the other kind of CPU runs (``DIFFILL_CPU_BF16=1`` on an AVX2-only
#: machine makes ``auto`` pick bfloat16 there, only slower; ``0`` on a bf16 machine, float32)
CPU_BF16_ENV = "DIFFILL_CPU_BF16"


def cpu_has_fast_bf16() -> bool:
    """True where the CPU has native bf16 matrix instructions (AVX512-BF16 or AMX):
    there bf16 inference is about twice as fast as float32; elsewhere it is slower.
    ``DIFFILL_CPU_BF16`` (``CPU_BF16_ENV``) overrides the answer."""
    forced = os.environ.get(CPU_BF16_ENV, "").strip().lower()
    if forced in ("1", "true", "yes", "on"):
        return True
    if forced in ("0", "false", "no", "off"):
        return False
    if forced:
        raise DeviceError(f"{CPU_BF16_ENV}={forced!r}: use 1 (bfloat16 as on an AVX512-BF16 CPU) or 0 (float32)")
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def probe() -> Machine:
    info = _meminfo()
    total = info.get("MemTotal", 0.0)
    available = info.get("MemAvailable", total)
    return Machine(gpus=_gpus(), ram_total_gb=total, ram_available_gb=available, cpu_fast_bf16=cpu_has_fast_bf16())


def free_disk_gb(path: str | os.PathLike[str]) -> float:
    """Free space where ``path`` is (or would be created)."""
    target = Path(path)
    while not target.exists() and target != target.parent:
        target = target.parent
    return shutil.disk_usage(target).free / GB
