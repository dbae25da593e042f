"""Which dtype the engine picks on a CPU, and the override that lets one machine run
what the other kind of CPU runs (``DIFFILL_CPU_BF16``, engine/machine.py)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.errors import DeviceError
from engine.loading import pick_dtype
from engine.machine import CPU_BF16_ENV, cpu_has_fast_bf16, probe


@pytest.mark.parametrize(("value", "expected"), [("1", torch.bfloat16), ("yes", torch.bfloat16),
                                                 ("0", torch.float32), ("off", torch.float32)])
def test_the_override_decides_the_cpu_dtype(monkeypatch, value, expected):
    monkeypatch.setenv(CPU_BF16_ENV, value)
    assert pick_dtype(None, "cpu") == expected
    assert probe().cpu_fast_bf16 == (expected == torch.bfloat16)
    assert pick_dtype("float32", "cpu") == torch.float32  # an explicit dtype still wins


def test_without_the_override_the_cpu_flags_decide(monkeypatch):
    monkeypatch.delenv(CPU_BF16_ENV, raising=False)
    flags = Path("/proc/cpuinfo").read_text()
    assert cpu_has_fast_bf16() == (" avx512_bf16" in flags or " amx_bf16" in flags)


def test_a_bad_override_is_one_clear_error(monkeypatch):
    monkeypatch.setenv(CPU_BF16_ENV, "maybe")
    with pytest.raises(DeviceError, match="DIFFILL_CPU_BF16='maybe': use 1"):
        pick_dtype(None, "cpu")
