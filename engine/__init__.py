"""diffill engine: fill the middle between a prefix and a suffix with a diffusion LM.

Public API (knows nothing of LSP)::

    from engine import InfillRequest, load_engine
    eng = load_engine()                       # bundled model, CPU or GPU
    res = eng.infill(InfillRequest(prefix="def f(x):\\n    return ", suffix="\\n"))
    for draft in eng.stream(request, cancel=token): ...

torch and transformers are imported lazily so that importing this package
(for the request types) is cheap.
"""
from __future__ import annotations

from engine.cancellation import CancellationToken
from engine.engine import Engine, load_engine
from engine.errors import (
    Cancelled,
    DeviceError,
    EngineError,
    InputError,
    ModelLoadError,
    ModelNotFoundError,
    OutOfMemory,
    UnsupportedModelError,
)
from engine.types import Alternative, ContextPiece, Draft, InfillRequest, InfillResult

__all__ = [
    "Alternative",
    "CancellationToken",
    "Cancelled",
    "ContextPiece",
    "DeviceError",
    "Draft",
    "Engine",
    "EngineError",
    "InfillRequest",
    "InfillResult",
    "InputError",
    "ModelLoadError",
    "ModelNotFoundError",
    "OutOfMemory",
    "UnsupportedModelError",
    "load_engine",
]
