"""Does a catalog model fit this machine?  Listing uses totals (could it ever run
here?); loading uses what is free right now and refuses with the numbers (and,
in the server, a second model must fit next to the first: ``check_room``).
Recommendations per use add the predicted speed (``engine.model_speed``)."""
from __future__ import annotations

from dataclasses import dataclass

from engine.catalog import CatalogModel, Choice
from engine.errors import DeviceError
from engine.machine import Machine
from engine.model_speed import Prediction

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


#: weight files a model directory may hold (what ``from_pretrained`` reads)
_WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "model*.bin")
_STORED_BYTES = {"float32": 4.0, "float16": 2.0, "bfloat16": 2.0, "float64": 8.0}


def model_need_gb(model: str | None, device: str, dtype: str | None, machine: Machine) -> float | None:
    """Memory ``model`` would take on ``device`` ("cpu" or "cuda"), loaded as the engine loads it:
    the catalog's estimate for a catalog model; for the bundled model or a local directory, its
    weight files scaled from their stored dtype to the one it runs in, by the catalog's rule
    (engine.catalog.memory_estimate: slack and the device's overhead).  None: not known here
    (a hub id, read from the cache only when loaded)."""
    import json
    import os
    from pathlib import Path

    from engine.catalog import CPU_OVERHEAD_GB, GPU_OVERHEAD_GB, SLACK
    from engine.model_names import BUNDLED_DIR, BUNDLED_NAME, catalog_choice

    gpu = device.startswith("cuda")
    choice = catalog_choice(model) if model not in (None, "", "bundled", BUNDLED_NAME) else None
    if choice is not None and not choice.model.bundled:
        on_cpu = "bf16" if dtype in _HALF else ("float32" if dtype else cpu_dtype(machine))
        return choice.model.need_gb(choice.variant, "cuda" if gpu else "cpu", on_cpu)
    path = BUNDLED_DIR if model in (None, "", "bundled", BUNDLED_NAME) or choice is not None else \
        Path(os.path.expanduser(str(model)))
    if not path.is_dir():
        return None
    files = {f for pattern in _WEIGHT_PATTERNS for f in path.glob(pattern)}
    stored_bytes = sum(f.stat().st_size for f in files)
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        config = {}
    stored = _STORED_BYTES.get(str(config.get("dtype") or config.get("torch_dtype") or "float32"), 4.0)
    runs_half = dtype in _HALF or (dtype is None and (gpu or machine.cpu_fast_bf16))
    weights_gb = stored_bytes / 1e9 * ((2.0 if runs_half else 4.0) / stored)
    return weights_gb * SLACK + (GPU_OVERHEAD_GB if gpu else CPU_OVERHEAD_GB)


def check_room(model: str | None, device: str, dtype: str | None, *, label: str, beside: str,
               beside_label: str, beside_device: str, machine: Machine | None = None) -> None:
    """Raise ``DeviceError`` (one line, naming both models and which to drop) when ``model`` does
    not fit the free memory of ``device`` while ``beside`` (the other use's model) is loaded.
    ``label``/``beside_label``: the settings that name them (``model``, ``fillModel``)."""
    from engine.machine import probe

    machine = machine or probe()
    gpu = device.startswith("cuda") or (device == "auto" and machine.gpu is not None)
    need = model_need_gb(model, "cuda" if gpu else "cpu", dtype, machine)
    if need is None:
        return
    if gpu:
        if machine.gpu is None:
            return  # no GPU: the load itself says so
        free, where = machine.gpu.free_gb, f"GPU memory on {machine.gpu.name}"
    else:
        free, where = machine.ram_available_gb, "RAM"
    if need <= free:
        return
    name = model or "the bundled model"
    raise DeviceError(f"{label} {name} needs ~{need:.1f} GB of {where}, {free:.1f} GB is free with {beside_label} "
                      f"{beside} loaded ({beside_device}): the two models do not fit together; drop one: set "
                      f"fillModel to null (model serves the fill command too), or choose a smaller {label}")


# -- recommendations per use, by predicted speed ----------------------------------------------

@dataclass(frozen=True)
class Option:
    """A catalog model as it would run here: the form that fits, where, and how fast."""

    model: CatalogModel
    fit: Fit
    #: predicted times where it runs (None: not predicted, e.g. the probe was skipped)
    prediction: Prediction | None

    @property
    def label(self) -> str:
        v = self.fit.gpu_variant
        return self.model.name if v in (None, "bf16") else f"{self.model.name}:{v}"

    @property
    def where(self) -> str:
        if self.prediction is not None:
            return f"{'GPU' if self.prediction.device == 'cuda' else 'CPU'} {self.prediction.dtype}"
        return "GPU" if self.fit.gpu_variant else "CPU"


def strength(model: CatalogModel) -> tuple[float, float]:
    """How models are ranked: the published HumanEval-Infilling figure (none: last), then size."""
    score = headline_score(model)
    return (score if score is not None else -1.0, model.params_b)


def placement(model: CatalogModel, fit: Fit, machine: Machine) -> tuple[str, str, str | None] | None:
    """Where ``model`` runs here and in what: (device, compute dtype, weights' dtype when quantized),
    or None when it fits nowhere."""
    if fit.gpu_variant is not None:
        weights = {"int8": "int8", "int4": "int4", "fp8": "fp8"}.get(fit.gpu_variant)
        return "cuda", "bfloat16", weights
    if fit.cpu:
        return "cpu", "bfloat16" if machine.cpu_fast_bf16 else "float32", None
    return None


def recommend_for(options: list[Option], use: str, budget_ms: float) -> Option | None:
    """For ``use`` ("typing": one single-line suggestion; "fill": the fill command) the strongest
    model (``strength``) that fits here and whose predicted time is within ``budget_ms``; the
    bundled model counts too (on a slow machine it may be the only one)."""
    within = [o for o in options if o.fit.ok and o.prediction is not None and o.prediction.within(use, budget_ms)]
    return max(within, key=lambda o: strength(o.model)) if within else None


def options(machine: Machine, free_disk_gb: float, rates_for) -> list[Option]:
    """Every catalog model as it would run on ``machine``: its fit, and its predicted times at
    ``rates_for(device, dtype)`` (an ``engine.speed_probe.Rates`` or None: not predicted)."""
    from engine import catalog, model_store
    from engine.model_speed import predict

    out = []
    for model in catalog.models().values():
        fit = assess(model, machine, model_store.is_downloaded(model), free_disk_gb)
        where = placement(model, fit, machine)
        prediction = None
        if where is not None:
            rates = rates_for(where[0], where[1])
            prediction = predict(model, rates, where[2]) if rates is not None else None
        out.append(Option(model, fit, prediction))
    return out
