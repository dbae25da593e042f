"""`diffill models list|pull|rm`: the catalog's models on this machine.

``list`` shows every catalog model with whether it is downloaded, whether it
fits this machine (GPU memory, RAM, disk), and its predicted time per typed line
and per fill here (from a short speed probe of this machine, skipped with
``--no-probe``), then which model to use for typing and which for the fill
command; ``--json`` prints a list of objects.
``pull NAME`` downloads a model's files at the catalog's pinned revision into the
Hugging Face cache and checks them against the hub's hashes (resumable: rerun it
after an interruption).  ``rm NAME`` deletes them again.  Nothing is downloaded
by any other command.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from diffill.errors import fail, user_error


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="list, download or delete catalog models",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="models_command", metavar="ACTION")
    listing = sub.add_parser("list", help="the catalog, downloaded or not, and what fits here")
    listing.add_argument("--json", action="store_true", help="print a JSON list of objects")
    from diffill import advice

    advice.add_arguments(listing)
    listing.set_defaults(func=run_list)
    pull = sub.add_parser("pull", help="download a catalog model (pinned revision, hashes checked)")
    pull.add_argument("name", help="catalog name (see `diffill models list`)")
    pull.set_defaults(func=run_pull)
    rm = sub.add_parser("rm", help="delete a downloaded catalog model")
    rm.add_argument("name", help="catalog name")
    rm.set_defaults(func=run_rm)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def _model(name: str):
    from engine import catalog

    choice = catalog.lookup(name)
    if choice is None:
        known = ", ".join(catalog.models())
        raise LookupError(f"{name!r} is not in the catalog (known: {known})")
    return choice.model


def describe(option, budgets: dict[str, float] | None = None) -> dict[str, Any]:
    """One catalog entry (an ``engine.model_fit.Option``) as `models list --json` prints it."""
    from engine import model_store

    model, fit, prediction = option.model, option.fit, option.prediction
    downloaded = model_store.is_downloaded(model)
    speed = None
    if prediction is not None:
        speed = {"device": prediction.device, "dtype": prediction.dtype, "window": prediction.window,
                 "forward_ms": round(prediction.forward_ms, 1), "typing_ms": round(prediction.typing_ms, 1),
                 "fill_ms": round(prediction.fill_ms, 1), "bound": prediction.bound}
        if budgets:
            speed["within_budget"] = {use: prediction.within(use, ms) for use, ms in budgets.items()}
    path = None
    if downloaded:
        path = None if model.bundled else str(model_store.snapshot_dir(model))
    return {
        "name": model.name, "title": model.title, "hub_id": model.hub_id, "revision": model.revision,
        "family": model.family, "params": model.params_b, "download_gb": model.download_gb,
        "downloaded": downloaded, "fits": fit.ok,
        "fit": {"gpu_variant": fit.gpu_variant, "cpu": fit.cpu, "disk": fit.disk},
        "variants": list(model.variants), "memory_gb": model.memory_gb, "licence": model.licence,
        "infill": [vars(f) for f in model.infill], "sampler": model.sampler, "path": path,
        "unverified": list(model.unverified), "speed": speed,
    }


def _where(entry: dict[str, Any]) -> str:
    fit = entry["fit"]
    if not fit["disk"]:
        return "no (disk)"
    if fit["gpu_variant"]:
        return "GPU" if fit["gpu_variant"] == "bf16" else f"GPU ({fit['gpu_variant']})"
    return "CPU only" if fit["cpu"] else "no (memory)"


def _score(entry: dict[str, Any]) -> str:
    first = entry["infill"][0] if entry["infill"] else None
    return f"{first['value']:g} {first['metric']} {first['benchmark']}" if first else "-"


def _speed(entry: dict[str, Any], use: str) -> str:
    from diffill.advice import duration

    speed = entry["speed"]
    if speed is None:
        return "-"
    ms = speed["typing_ms" if use == "typing" else "fill_ms"]
    over = "" if speed.get("within_budget", {}).get(use, True) else " (over)"
    return f"~{duration(ms)}{over}"


def run_list(args: argparse.Namespace) -> int:
    from diffill import advice as advice_module
    from engine import model_store
    from engine.machine import free_disk_gb, probe

    try:
        machine = probe()
        free = free_disk_gb(model_store.cache_dir())
        advice = advice_module.gather(machine, free, args)
        entries = [describe(o, advice.budgets) for o in advice.options]
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback
        return fail(user_error(exc) or f"{exc.__class__.__name__}: {exc}")
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    header = ("name", "family", "params", "download", "downloaded", "fits here", "1 line", "fill",
              "infill (published)")
    def size(e: dict[str, Any]) -> str:  # "~": not read from the hub (see the entry's "unverified")
        return ("~" if "download_gb" in e["unverified"] else "") + f"{e['download_gb']:.1f} GB"

    rows = [(e["name"], e["family"], f"{e['params']:g}B", size(e),
             "yes" if e["downloaded"] else "no", _where(e), _speed(e, "typing"), _speed(e, "fill"), _score(e))
            for e in entries]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
    gpu = machine.gpu
    print(f"\nthis machine: {f'{gpu.name} {gpu.total_gb:.1f} GB' if gpu else 'no GPU'}, "
          f"RAM {machine.ram_total_gb:.1f} GB, {free:.1f} GB free disk in {model_store.cache_dir()}")
    for rates in advice.rates.values():
        print(f"speed probe: {rates.describe()}")
    print(f"for typing (model): {advice_module.recommendation(advice, 'typing')}")
    print(f"for the fill command (fillModel): {advice_module.recommendation(advice, 'fill')}")
    gpu_line = advice_module.gpu_would_bring(advice)
    if gpu_line:
        print(f"a GPU would bring: {gpu_line}")
    print("~ = size not read from the hub; memory needs are estimates; times are predictions for one typed line "
          "and one fill at the default settings (docs/MODELS.md)")
    return 0


def run_pull(args: argparse.Namespace) -> int:
    from engine import model_store

    try:
        model = _model(args.name)
        if model.bundled:
            print(f"{model.name} is bundled with diffill: nothing to download", file=sys.stderr)
            return 0
        model_store.pull(model)
    except KeyboardInterrupt:
        return fail("interrupted: run the same command again to resume (finished files are kept)", 130)
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback
        return fail(user_error(exc) or str(exc) or exc.__class__.__name__)
    return 0


def run_rm(args: argparse.Namespace) -> int:
    from engine import model_store

    try:
        model = _model(args.name)
        if model.bundled:
            return fail(f"{model.name} is bundled with diffill and cannot be removed")
        if not model_store.snapshot_dir(model) or not model_store.repo_dir(model.hub_id).exists():
            print(f"{model.name} is not downloaded")
            return 0
        freed = model_store.remove(model)
    except Exception as exc:  # noqa: BLE001
        return fail(user_error(exc) or str(exc) or exc.__class__.__name__)
    print(f"removed {model.name} ({freed:.2f} GB freed)")
    return 0
