"""`diffill doctor`: versions, device, model, whether a tiny fill works, and the
catalog model to use on this machine for typing and for the fill command, by
predicted speed from a short probe of the machine (``--no-probe`` skips it).

Prints one ``name: value`` line per check (``--json`` for a JSON object) and
exits non-zero when the model cannot be loaded or the test fill fails.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from importlib import metadata
from typing import Any

from diffill.errors import user_error
from engine.arguments import add_model_options, load_engine_from_args

PACKAGES = ("torch", "transformers", "tokenizers", "pygls")
#: the test fill: small enough to run in well under a second on a CPU
PROBE: dict[str, Any] = {"prefix": "def add(a, b):\n    return ", "suffix": "\n", "max_new_tokens": 8}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("doctor", help="check the installation, device and model",
                                   description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    from diffill import advice

    advice.add_arguments(parser)
    add_model_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "backend", "local") != "local":
        return _print(args, _remote(args))
    report: dict[str, Any] = {"python": platform.python_version()}
    report.update({name: _version(name) for name in PACKAGES})
    report.update(_device())
    report.update(_model(args))
    report.update(_recommendation(args))
    return _print(args, report)


def _print(args: argparse.Namespace, report: dict[str, Any]) -> int:
    ok = report.get("fill") == "ok"
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key}: {value}")
        print("status: ok" if ok else "status: FAILED")
    return 0 if ok else 1


def _remote(args: argparse.Namespace) -> dict[str, Any]:
    """A remote backend: the server answers, which models it serves (and their
    context length), and one tiny fill's round trip.  No torch is imported."""
    from engine.types import InfillRequest

    out: dict[str, Any] = {"python": platform.python_version(), "backend": args.backend, "url": args.url,
                           "model": args.model or "(server default)"}
    try:
        engine = load_engine_from_args(args, progress=False)
    except Exception as exc:  # noqa: BLE001
        out["reachable"] = f"FAILED: {user_error(exc) or exc}"
        return out
    backend = engine.backend
    try:
        start = time.perf_counter()
        models = backend.served_models()
        out["reachable"] = f"ok ({(time.perf_counter() - start) * 1000:.0f} ms)"
        out["served_models"] = ", ".join(
            f"{m['id']} ({m['context_tokens']} tokens)" if m.get("context_tokens") else str(m["id"]) for m in models
        ) or "(none listed)"
    except Exception as exc:  # noqa: BLE001 - a server without a model list may still fill
        out["reachable"] = f"FAILED: {user_error(exc) or exc}"
    try:
        start = time.perf_counter()
        result = engine.infill(InfillRequest(**PROBE))
        out["fill_round_trip_ms"] = round((time.perf_counter() - start) * 1000, 1)
        out["fill_middle"] = result.middle
        out["fill"] = "ok"
    except Exception as exc:  # noqa: BLE001
        out["fill"] = f"FAILED: {user_error(exc) or f'{exc.__class__.__name__}: {exc}'}"
    mode = getattr(backend, "infill_mode", None)
    if mode is not None:
        out["vllm_infill"] = mode
    out.update(_served(engine))
    return out


def _served(engine: Any) -> dict[str, Any]:
    """The window every prompt is kept within, where it came from, and what the
    user must know about the server (llama-server behind --backend openai ignores the suffix)."""
    backend = engine.backend
    said = backend.server.context_tokens if getattr(backend, "server", None) else None
    source = ("--context-tokens" if backend.configured_context else
              "the server" if said else "default: the server does not say")
    out: dict[str, Any] = {"served_context_tokens": f"{backend.context_tokens} ({source})"}
    for i, note in enumerate(engine.notes()):
        out["warning" if i == 0 else f"warning_{i + 1}"] = note
    return out


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _device() -> dict[str, Any]:
    try:
        import torch
    except Exception as exc:  # noqa: BLE001 - a broken torch is exactly what doctor reports
        return {"cuda": f"unknown (torch does not import: {exc.__class__.__name__})"}
    if not torch.cuda.is_available():
        return {"cuda": "not available", "cpu_threads": torch.get_num_threads()}
    return {"cuda": "available", "gpu": torch.cuda.get_device_name(0),
            "cuda_version": torch.version.cuda}


def _model(args: argparse.Namespace) -> dict[str, Any]:
    from engine.types import InfillRequest

    out: dict[str, Any] = {}
    try:
        from engine.loading import resolve_model

        out["model_path"] = resolve_model(args.model)[0]
    except Exception as exc:  # noqa: BLE001
        out["model_path"] = args.model or "(bundled)"
        out["model_load"] = f"FAILED: {user_error(exc) or exc}"
        return out
    try:
        start = time.perf_counter()
        engine = load_engine_from_args(args, progress=False)
        out["model_load"] = f"ok ({(time.perf_counter() - start):.1f} s)"
        out.update({f"engine_{k}": v for k, v in engine.describe().items() if k != "model"})
    except Exception as exc:  # noqa: BLE001
        out["model_load"] = f"FAILED: {user_error(exc) or f'{exc.__class__.__name__}: {exc}'}"
        return out
    try:
        result = engine.infill(InfillRequest(**PROBE))
        out["fill_ms"] = round(result.ms, 1)
        out["fill_forwards"] = result.forwards
        out["fill"] = "ok"
    except Exception as exc:  # noqa: BLE001
        out["fill"] = f"FAILED: {user_error(exc) or f'{exc.__class__.__name__}: {exc}'}"
    return out


def _recommendation(args: argparse.Namespace) -> dict[str, Any]:
    """The catalog model for typing and the one for the fill command on this machine (memory,
    disk and predicted speed against the budgets), and what a GPU would bring where only the
    bundled model is fast enough for typing."""
    try:
        from diffill import advice as advice_module
        from engine import model_store
        from engine.machine import free_disk_gb, probe

        advice = advice_module.gather(probe(), free_disk_gb(model_store.cache_dir()), args)
        out: dict[str, Any] = {}
        for rates in advice.rates.values():
            out[f"speed_probe_{rates.device}"] = rates.describe()
        out["recommended_typing_model"] = advice_module.recommendation(advice, "typing")
        out["recommended_fill_model"] = advice_module.recommendation(advice, "fill")
        gpu_line = advice_module.gpu_would_bring(advice)
        if gpu_line:
            out["gpu_would_bring"] = gpu_line
        return out
    except Exception as exc:  # noqa: BLE001 - doctor reports, never crashes
        return {"recommended_typing_model": f"unknown ({user_error(exc) or exc.__class__.__name__})"}
