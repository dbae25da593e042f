"""Does a catalog model fit this machine?  Listing uses totals (could it ever run
here?); loading uses what is free right now and refuses with the numbers."""
from __future__ import annotations

from dataclasses import dataclass

from engine.catalog import CatalogModel, Choice
from engine.errors import DeviceError
from engine.machine import Machine

#: GPU variants from best quality to smallest
GPU_PREFERENCE = ("bf16", "fp8", "int8", "int4")


@dataclass(frozen=True)
class Fit:
    gpu_variant: str | None  # the best variant whose memory fits the GPU, if any
    cpu: bool  # the full-precision model fits in RAM (CPU inference)
    disk: bool  # downloaded already, or the download fits the free disk

    @property
    def ok(self) -> bool:
        return self.disk and (self.gpu_variant is not None or self.cpu)


def cpu_dtype(machine: Machine) -> str:
    """The dtype diffill runs on this CPU by default (engine.loading.pick_dtype)."""
    return "bf16" if machine.cpu_fast_bf16 else "float32"


def assess(model: CatalogModel, machine: Machine, downloaded: bool, free_disk_gb: float) -> Fit:
    gpu_variant = None
    if machine.gpu is not None:
        for variant in GPU_PREFERENCE:
            need = model.need_gb(variant, "cuda") if variant in model.variants else None
            if need is not None and need <= machine.gpu.total_gb:
                gpu_variant = variant
                break
    cpu_need = model.need_gb("bf16", "cpu", cpu_dtype(machine))
    cpu = cpu_need is not None and cpu_need <= machine.ram_total_gb
    disk = downloaded or model.download_gb <= free_disk_gb
    return Fit(gpu_variant, cpu, disk)


#: --dtype names that load 16-bit weights on the CPU
_HALF = ("bfloat16", "bf16", "float16", "fp16")


def check_fits(choice: Choice, device: str, machine: Machine, dtype: str | None = None) -> None:
    """Raise ``DeviceError`` naming needed vs available memory when ``choice`` will not fit
    on ``device`` now (callers skip this when the user forces the load).  ``dtype``: the
    user's ``--dtype``, which decides the CPU figure (16-bit or float32)."""
    model, variant = choice.model, choice.variant
    if device.startswith("cuda"):
        need = model.need_gb(variant, "cuda")
        gpu = machine.gpu
        if need is None or gpu is None:
            return
        if need > gpu.free_gb:
            smaller = [v for v in GPU_PREFERENCE if v in model.variants
                       and (model.need_gb(v, "cuda") or 1e9) <= gpu.free_gb]
            hint = f"try {model.name}:{smaller[0]}" if smaller else "use a smaller catalog model"
            raise DeviceError(f"{choice.label} needs ~{need:.1f} GB of GPU memory, {gpu.free_gb:.1f} GB is free on "
                              f"{gpu.name}: {hint}, or pass --force to try anyway")
        return
    on_cpu = "bf16" if dtype in _HALF else ("float32" if dtype else cpu_dtype(machine))
    need = model.need_gb(variant, "cpu", on_cpu)
    if need is None:
        return  # quantized variants are refused on the CPU with their own reason
    if need > machine.ram_available_gb:
        raise DeviceError(f"{choice.label} needs ~{need:.1f} GB of RAM on the CPU ({on_cpu}), "
                          f"{machine.ram_available_gb:.1f} GB is available: use a GPU or a smaller catalog "
                          "model, or pass --force to try anyway")


def headline_score(model: CatalogModel) -> float | None:
    """The model's published HumanEval-Infilling pass@1 without oracle lengths, if the catalog has one."""
    scores = [f.value for f in model.infill
              if f.benchmark.startswith("HumanEval-Infilling") and f.metric == "pass@1" and "oracle" not in f.setting]
    return max(scores) if scores else None


def recommend(candidates: list[tuple[CatalogModel, Fit]]) -> tuple[CatalogModel, Fit] | None:
    """The best catalog model that fits: runs on the GPU before CPU-only, then the higher
    published infill score (models without one last); the bundled model never."""
    usable = [(m, f) for m, f in candidates if f.ok and not m.bundled]
    if not usable:
        return None

    def rank(item: tuple[CatalogModel, Fit]) -> tuple[int, float]:
        model, fit = item
        score = headline_score(model)
        return (1 if fit.gpu_variant else 0, score if score is not None else -1.0)

    return max(usable, key=rank)
