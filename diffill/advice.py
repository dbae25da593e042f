"""Which catalog model to use for typing and which for the fill command, as the
``models list`` and ``doctor`` commands say it.

Why here: both commands print the same advice from the same options
(``engine.model_fit.options``: fit and predicted speed per model); this module
only words it.  The probe of the machine (``engine.speed_probe``) runs once per
process; ``--no-probe`` skips it, and then nothing is recommended by speed.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass

from engine.machine import Gpu, Machine
from engine.model_fit import Option, assess, options, placement, recommend_for
from engine.model_speed import FILL_BUDGET_MS, TYPING_BUDGET_MS, predict, reference_gpus
from engine.speed_probe import Rates

USES = ("typing", "fill")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-probe", action="store_true",
                        help="skip the short speed probe of this machine (no predicted times, no advice by speed)")
    parser.add_argument("--typing-budget-ms", type=float, default=TYPING_BUDGET_MS, metavar="MS",
                        help=f"a typed line's predicted time a typing model must keep within (default "
                             f"{TYPING_BUDGET_MS:g})")
    parser.add_argument("--fill-budget-s", type=float, default=FILL_BUDGET_MS / 1000, metavar="S",
                        help=f"a fill's predicted time a fill model must keep within (default "
                             f"{FILL_BUDGET_MS / 1000:g})")


@dataclass
class Advice:
    """The options on this machine, the probes they were predicted from, and the budgets."""

    machine: Machine
    options: list[Option]
    rates: dict[tuple[str, str], Rates]
    budgets: dict[str, float]  # use -> milliseconds
    probed: bool

    def best(self, use: str) -> Option | None:
        return recommend_for(self.options, use, self.budgets[use])


def gather(machine: Machine, free_disk_gb: float, args: argparse.Namespace) -> Advice:
    """Fit and (unless ``--no-probe``) predicted speed of every catalog model here."""
    rates: dict[tuple[str, str], Rates] = {}
    probed = not getattr(args, "no_probe", False)

    def rates_for(device: str, dtype: str) -> Rates | None:
        if not probed:
            return None
        if (device, dtype) not in rates:
            from engine.speed_probe import probe

            rates[(device, dtype)] = probe(device, dtype)
        return rates[(device, dtype)]

    budgets = {"typing": float(getattr(args, "typing_budget_ms", TYPING_BUDGET_MS)),
               "fill": float(getattr(args, "fill_budget_s", FILL_BUDGET_MS / 1000)) * 1000}
    return Advice(machine, options(machine, free_disk_gb, rates_for), rates, budgets, probed)


def duration(ms: float) -> str:
    """``85 ms``, ``4.2 s``, ``3.5 min``."""
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    return f"{ms / 60_000:.1f} min"


def _per(use: str) -> str:
    return "per line" if use == "typing" else "per fill"


def _time(option: Option, use: str) -> float:
    assert option.prediction is not None
    return option.prediction.typing_ms if use == "typing" else option.prediction.fill_ms


def _how(option: Option) -> str:
    model = option.model
    if model.bundled:
        return "the default (no setting needed)"
    if option.fit.disk and not _downloaded(option):
        return f"diffill models pull {model.name}, then {option.label}"
    return option.label


def _downloaded(option: Option) -> bool:
    from engine import model_store

    return model_store.is_downloaded(option.model)


def recommendation(advice: Advice, use: str) -> str:
    """One line: the model for ``use`` and why, or plainly why none but the bundled one."""
    budget = advice.budgets[use]
    setting = "model" if use == "typing" else "fillModel"
    if not advice.probed:
        return f"not predicted (--no-probe): run without it to get the {use} model by speed"
    best = advice.best(use)
    predicted = sorted((o for o in advice.options if o.fit.ok and o.prediction is not None),
                       key=lambda o: _time(o, use))
    if best is None:
        fastest = ""
        if predicted:
            first = predicted[0]
            bundled = " (bundled, the default)" if first.model.bundled else ""
            fastest = f"; the fastest is {first.label}{bundled} at ~{duration(_time(first, use))} {_per(use)}"
        return (f"none of the catalog models is predicted within the {duration(budget)} {use} budget on this "
                f"machine{fastest}")
    line = (f"{best.label} ({best.where}, ~{duration(_time(best, use))} {_per(use)}, budget "
            f"{duration(budget)}): {setting} = {_how(best)}")
    if best.model.bundled:
        line += f"; plainly, nothing but the bundled model fits the {use} budget on this machine"
        others = [o for o in predicted if not o.model.bundled]
        if others:
            line += f" ({others[0].label} would take ~{duration(_time(others[0], use))} {_per(use)})"
    return line


def gpu_would_bring(advice: Advice) -> str | None:
    """What a reference GPU would run within the budgets (datasheet estimates), when this
    machine has no GPU and the typing advice is the bundled model or nothing."""
    if advice.machine.gpu is not None or not advice.probed:
        return None
    best = advice.best("typing")
    if best is not None and not best.model.bundled:
        return None
    parts = []
    for gpu in reference_gpus():
        machine = Machine(gpus=(Gpu(gpu.name, gpu.memory_gb, gpu.memory_gb),), ram_total_gb=1e9,
                          ram_available_gb=1e9, cpu_fast_bf16=False)
        there = []
        for o in advice.options:
            fit = assess(o.model, machine, True, 1e9)
            where = placement(o.model, fit, machine)
            if where is None or where[0] != "cuda":
                continue
            there.append(Option(o.model, fit, predict(o.model, gpu.rates, where[2])))
        picks = []
        for use in USES:
            pick = recommend_for(there, use, advice.budgets[use])
            if pick is not None:
                picks.append(f"{use} {pick.label} ~{duration(_time(pick, use))} {_per(use)}")
        if picks:
            parts.append(f"{gpu.name} ({gpu.memory_gb:g} GB): " + ", ".join(picks))
    if not parts:
        return None
    return "; ".join(parts) + " (estimates from the GPUs' datasheets, engine/models/catalog/gpus.json)"
