"""The model catalog: short names for real diffusion code models.

The data lives in one file, ``engine/models/catalog/models.json`` (set
``DIFFILL_CATALOG`` to use another one, e.g. a mirror's); this module only
reads and checks it.  Every number there carries its source; memory figures
follow the rule in :func:`memory_estimate`, which a test recomputes.

A name may end in ``:VARIANT`` (``dream-coder-7b:int4``) to pick a quantized
form; a bare name means the full-precision one.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from engine.errors import ModelNotFoundError

DEFAULT_PATH = Path(__file__).parent / "models" / "catalog" / "models.json"
ENV_VAR = "DIFFILL_CATALOG"
_REVISION = re.compile(r"[0-9a-f]{40}")
#: variants and what they mean for loading: full precision, or weights quantized on CUDA
VARIANTS = ("bf16", "int8", "int4", "fp8")
#: GB of GPU memory beyond the weights: CUDA context and activations/logits at a 1k-token window
GPU_OVERHEAD_GB = 1.5
#: GB of RAM beyond the weights when running on the CPU (interpreter, torch, tokenizer)
CPU_OVERHEAD_GB = 1.0
#: allocator slack on top of the weights
SLACK = 1.05
#: bytes per weight: bitsandbytes nf4 stores 4 bits plus one absmax per 64 weights
_BYTES = {"bf16": 2.0, "float32": 4.0, "int8": 1.0, "int4": 0.53, "fp8": 1.0}


@dataclass(frozen=True)
class Figure:
    """A published score, with where it comes from."""

    benchmark: str
    metric: str
    value: float
    setting: str
    source: str


@dataclass(frozen=True)
class CatalogModel:
    name: str
    title: str
    family: str
    hub_id: str | None
    revision: str | None
    revision_source: str
    params_b: float
    embedding_params_b: float
    params_source: str
    download_gb: float
    download_source: str
    licence: str
    licence_source: str
    files: tuple[str, ...]
    memory_gb: dict[str, dict[str, float]]
    infill: tuple[Figure, ...]
    sampler: dict[str, Any]
    notes: str = ""
    bundled: bool = False
    #: fields not read from the hub or the model's own page here (estimates, third-party sightings)
    unverified: tuple[str, ...] = ()
    #: the network's shapes from its config.json (layers, widths, heads, vocabulary, default window),
    #: with their source: what a forward costs (engine.model_cost); None where the catalog has none
    architecture: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def variants(self) -> tuple[str, ...]:
        """Forms it can be loaded in (``bf16`` = full precision: bf16 on a GPU, per-device on a CPU)."""
        return tuple(v for v in VARIANTS if v in self.memory_gb)

    def need_gb(self, variant: str, device: str, cpu_dtype: str = "float32") -> float | None:
        """Memory the variant needs on ``device`` ("cuda" or "cpu"), or None when it cannot run there."""
        table = self.memory_gb.get(cpu_dtype if device == "cpu" and variant == "bf16" else variant, {})
        return table.get("gpu" if device.startswith("cuda") else "cpu")


@dataclass(frozen=True)
class Choice:
    """A catalog name as the user wrote it: the model and the variant."""

    model: CatalogModel
    variant: str

    @property
    def label(self) -> str:
        return self.model.name if self.variant == "bf16" else f"{self.model.name}:{self.variant}"


def memory_estimate(params_b: float, embedding_params_b: float, variant: str, device: str) -> float:
    """GB a model needs (the catalog's rule, see models.json "memory_rule").

    Weights: params x bytes per weight; quantized forms keep the embedding and
    output matrices (``embedding_params_b``) in 16 bits, as bitsandbytes does.
    Plus ``SLACK`` and a fixed overhead per device; rounded up to 0.1 GB.
    """
    bytes_per = _BYTES[variant]
    quantized = variant in ("int8", "int4", "fp8")
    body = params_b - embedding_params_b if quantized else params_b
    weights = body * bytes_per + (embedding_params_b * 2.0 if quantized else 0.0)
    overhead = GPU_OVERHEAD_GB if device == "gpu" else CPU_OVERHEAD_GB
    return math.ceil((weights * SLACK + overhead) * 10 - 1e-9) / 10


def catalog_path() -> Path:
    return Path(os.environ.get(ENV_VAR) or DEFAULT_PATH)


@lru_cache(maxsize=4)
def _load(path: str, mtime: float) -> dict[str, CatalogModel]:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ModelNotFoundError(f"model catalog {path} is missing") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelNotFoundError(f"model catalog {path} is unreadable ({exc})") from None
    models = {}
    for raw in data.get("models", []):
        entry = _entry(raw, path)
        models[entry.name] = entry
    return models


def _entry(raw: dict[str, Any], path: str) -> CatalogModel:
    try:
        revision = raw.get("revision")
        if revision is not None and not _REVISION.fullmatch(revision):
            raise ValueError(f"revision {revision!r} is not a 40-hex commit")
        return CatalogModel(
            name=raw["name"], title=raw.get("title", raw["name"]), family=raw["family"],
            hub_id=raw.get("hub_id"), revision=revision, revision_source=raw.get("revision_source", ""),
            params_b=float(raw["params_b"]), embedding_params_b=float(raw.get("embedding_params_b", 0.0)),
            params_source=raw["params_source"], download_gb=float(raw["download_gb"]),
            download_source=raw["download_source"], licence=raw["licence"], licence_source=raw["licence_source"],
            files=tuple(raw.get("files", ())), memory_gb={k: dict(v) for k, v in raw["memory_gb"].items()},
            infill=tuple(Figure(**f) for f in raw.get("infill", ())), sampler=dict(raw.get("sampler", {})),
            notes=raw.get("notes", ""), bundled=bool(raw.get("bundled", False)),
            unverified=tuple(raw.get("unverified", ())),
            architecture=dict(raw["architecture"]) if raw.get("architecture") else None,
            extra={k: v for k, v in raw.items() if k.startswith("x_")},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelNotFoundError(f"model catalog {path}: bad entry {raw.get('name', '?')!r} ({exc})") from None


def models() -> dict[str, CatalogModel]:
    """Every catalog model by name, in file order."""
    path = catalog_path()
    mtime = path.stat().st_mtime if path.exists() else 0.0
    return _load(str(path), mtime)


def lookup(name: str | None) -> Choice | None:
    """The catalog choice ``name`` denotes (a short name, ``name:variant``, or the
    hub id of a catalog model), or None when it is no catalog name."""
    if not name:
        return None
    table = models()
    base, _, variant = name.partition(":")
    entry: CatalogModel | None = table.get(base)
    if entry is None:
        entry = next((m for m in table.values() if m.hub_id and m.hub_id == name), None)
        if entry is None:
            return None
        variant = ""
    variant = variant or "bf16"
    if variant not in entry.variants:
        raise ModelNotFoundError(f"{entry.name} has no {variant!r} variant (it has: {', '.join(entry.variants)})")
    return Choice(entry, variant)
