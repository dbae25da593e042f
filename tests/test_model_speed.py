"""Predicted speed per catalog model, and recommendations per use (typing, the fill command).

The machines here are fakes (``Rates`` with stated figures), so the outcome does
not depend on the machine the test lands on; docs/MODELS.md compares the
predictions with real forwards timed on the development machine.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from engine import catalog
from engine.machine import Gpu, Machine
from engine.model_cost import forward_cost
from engine.model_fit import Option, assess, placement, recommend_for
from engine.model_speed import FILL_BUDGET_MS, STEP_MARGIN, TYPING_BUDGET_MS, USES, arch_of, predict
from engine.speed_probe import Rates, measure

#: a 2-core AVX2 CPU without bf16 units (float32), as the project's dev-cpu-avx2 measured it:
#: 83-123 GFLOP/s at the bundled model's shapes (docs/BENCHMARKS.md, scripts/gemm-rate.py);
#: attention, memory and elementwise rates of the same order
TWO_CORES_AVX2 = Rates(device="cpu", dtype="float32", threads=2,
                       gemm={(r, i): 100.0 for r in (64, 512) for i in (384, 1024, 4096)}, bandwidth_gbs=15.0,
                       attention={64: 50.0, 128: 50.0}, elementwise_gbs=8.0, source="fake: a 2-core AVX2 CPU")


def two_core_machine(ram_gb: float = 32.0) -> Machine:
    return Machine(gpus=(), ram_total_gb=ram_gb, ram_available_gb=ram_gb, cpu_fast_bf16=False)


def options_on(machine: Machine, rates: Rates) -> list[Option]:
    out = []
    for model in catalog.models().values():
        fit = assess(model, machine, True, 1000.0)
        where = placement(model, fit, machine)
        out.append(Option(model, fit, predict(model, rates, where[2]) if where else None))
    return out


def test_every_catalog_architecture_gives_its_parameter_count():
    """A wrong layer count or width in the catalog shows as a parameter count that is off
    (DiffusionGemma's global layers' wider heads are left out: within 4 %)."""
    for model in catalog.models().values():
        arch = arch_of(model)
        assert arch is not None, model.name
        assert abs(arch.params() / 1e9 / model.params_b - 1) < 0.04, (model.name, arch.params())


def test_the_bundled_models_architecture_is_its_config():
    model = catalog.lookup("diffill-tiny").model
    arch = arch_of(model)
    directory = Path(catalog.__file__).parent / "models" / "diffill-tiny"
    config = json.loads((directory / "config.json").read_text())
    meta = json.loads((directory / "diffill.json").read_text())
    assert (arch.layers, arch.hidden, arch.intermediate, arch.heads, arch.vocab) == (
        config["num_hidden_layers"], config["hidden_size"], config["intermediate_size"],
        config["num_attention_heads"], config["vocab_size"])
    assert arch.default_window == meta["default_context"] and arch.tied_embeddings == config["tie_word_embeddings"]


def test_the_canvas_step_margin_is_the_engines():
    from engine.backends.masked_forward import MARGIN

    assert STEP_MARGIN == MARGIN


def test_a_forward_costs_two_flops_per_weight_and_position():
    """The products of a full forward are the weights once per position (x2 FLOPs), plus the head."""
    arch = arch_of(catalog.lookup("dream-coder-7b").model)
    cost = forward_cost(arch, 1024, 1024, 1024, 2.0, 2.0)
    layer_and_head = arch.layers * arch.layer_params() + arch.hidden * arch.vocab
    assert sum(p.flops for p in cost.products) == pytest.approx(2 * 1024 * layer_and_head)
    assert cost.weight_bytes == pytest.approx(2.0 * layer_and_head)
    assert 14e12 < cost.flops < 16e12  # ~15 TFLOP: a minute on a 2-core CPU


def test_time_is_bound_by_compute_for_a_window_and_by_memory_for_few_rows():
    rates = Rates(device="cuda", dtype="bfloat16", threads=0, gemm={(r, i): 400_000.0 for r in (64, 2048)
                                                                     for i in (1024, 8192)},
                  bandwidth_gbs=2000.0, attention={128: 200_000.0}, elementwise_gbs=2000.0)
    model = catalog.lookup("dream-coder-7b").model
    prediction = predict(model, rates)
    assert prediction.bound == "compute"
    gemma = predict(catalog.lookup("diffusiongemma-26b-a4b").model, rates)
    assert gemma.bound == "memory"  # a canvas step reads every expert (docs/DESIGN: bandwidth-bound)


def test_typing_and_fill_take_the_familys_forwards():
    model = catalog.lookup("dream-coder-7b").model
    p = predict(model, TWO_CORES_AVX2)
    assert p.typing_ms == pytest.approx(USES["dream"]["typing"].full * p.forward_ms)
    assert p.fill_ms == pytest.approx(USES["dream"]["fill"].full * p.forward_ms)
    tiny = predict(catalog.lookup("diffill-tiny").model, TWO_CORES_AVX2)
    assert tiny.forward_ms < tiny.typing_ms < 3 * tiny.forward_ms  # canvas steps are cheaper than full forwards


def test_a_two_core_cpu_without_a_gpu_is_recommended_nothing_over_the_typing_budget():
    """Issue 31: doctor said dream-coder-7b ("CPU only: slow") on such a machine, minutes per suggestion."""
    options = options_on(two_core_machine(ram_gb=64.0), TWO_CORES_AVX2)  # RAM enough for a 7B in float32
    for use, budget in (("typing", TYPING_BUDGET_MS), ("fill", FILL_BUDGET_MS)):
        pick = recommend_for(options, use, budget)
        assert pick is None or pick.prediction.within(use, budget), (use, pick)
    seven = next(o for o in options if o.model.name == "dream-coder-7b")
    assert seven.fit.ok and seven.prediction.typing_ms > 60_000  # it fits in RAM but takes over a minute
    assert recommend_for(options, "typing", 10 * 60_000).model.name == "dream-coder-7b"  # only a lax budget takes it


def test_on_a_large_gpu_the_strongest_model_within_budget_is_recommended():
    gpu = Machine(gpus=(Gpu("Big GPU", 80.0, 80.0),), ram_total_gb=64, ram_available_gb=64, cpu_fast_bf16=True)
    rates = Rates(device="cuda", dtype="bfloat16", threads=0, gemm={(r, i): 500_000.0 for r in (64, 2048)
                                                                     for i in (1024, 8192)},
                  bandwidth_gbs=2500.0, attention={128: 250_000.0}, elementwise_gbs=2500.0, launch_us=5.0)
    options = options_on(gpu, rates)
    assert recommend_for(options, "typing", TYPING_BUDGET_MS).model.name == "dream-coder-7b"
    assert recommend_for(options, "fill", FILL_BUDGET_MS).model.name == "dream-coder-7b"
    assert recommend_for(options, "typing", 5.0).model.name == "diffill-tiny"  # a very tight budget


def test_doctor_on_a_two_core_cpu_names_the_bundled_model_plainly_and_what_a_gpu_would_bring(monkeypatch):
    """`diffill doctor`'s advice with a fake machine and a fake probe: no model over the budget, said plainly."""
    from diffill import doctor
    from engine import machine as machine_module
    from engine import speed_probe

    monkeypatch.setattr(machine_module, "probe", lambda: two_core_machine(16.0))
    monkeypatch.setattr(speed_probe, "probe", lambda device, dtype, threads=None: TWO_CORES_AVX2)
    args = argparse.Namespace(no_probe=False, typing_budget_ms=TYPING_BUDGET_MS, fill_budget_s=FILL_BUDGET_MS / 1000)
    report = doctor._recommendation(args)
    typing = report["recommended_typing_model"]
    for name in ("dream-coder-7b", "diffucoder-7b", "llada-8b", "dreamon-7b"):
        assert not typing.startswith(name), typing
    assert typing.startswith("diffill-tiny") or typing.startswith("none of the catalog models")
    assert "bundled" in typing
    assert "NVIDIA" in report["gpu_would_bring"] and "estimates" in report["gpu_would_bring"]
    assert report["speed_probe_cpu"].startswith("cpu float32, 2 threads")


def test_no_probe_recommends_nothing_by_speed():
    from diffill import advice

    args = argparse.Namespace(no_probe=True, typing_budget_ms=TYPING_BUDGET_MS, fill_budget_s=10.0)
    gathered = advice.gather(two_core_machine(), 1000.0, args)
    assert all(o.prediction is None for o in gathered.options) and not gathered.rates
    assert "--no-probe" in advice.recommendation(gathered, "typing")


def test_the_probe_is_short_and_measures_every_shape():
    rates = measure("cpu", "float32", threads=1)
    assert set(rates.gemm) == {(r, i) for r in (64, 512) for i in (384, 1024, 4096)}
    assert all(v > 0 for v in rates.gemm.values()) and rates.bandwidth_gbs > 0 and rates.elementwise_gbs > 0
    assert rates.seconds * rates.share < 1.0  # its CPU time (the wall time on a busy machine is longer)
