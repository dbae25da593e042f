"""Shared fixtures: a tiny randomly initialised model written to disk once per session.

It has exactly the bundled model's format (ModernBERT masked LM + byte-level BPE
tokenizer + diffill.json), so loader, sampler and server tests run against real
files without depending on the trained weights.
"""
from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest


def _sample_texts() -> list[str]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted((stdlib / "json").glob("*.py")) + sorted((stdlib / "email").glob("*.py"))[:5]
    return [f.read_text(encoding="utf-8", errors="replace") for f in files]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from engine.training.model_factory import make_random_model

    out = tmp_path_factory.mktemp("tiny-model")
    return make_random_model(out, _sample_texts(), size="test", vocab_size=512, context=256)


@pytest.fixture(scope="session")
def tiny_engine(tiny_model_dir: Path):
    """The tiny model in float32 on every CPU (the engine's own choice is bfloat16 where the
    CPU has bf16 units): a test's outcome must not depend on the machine it lands on."""
    from engine import load_engine

    return load_engine(str(tiny_model_dir), device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def tiny_engine_bf16(tiny_model_dir: Path):
    """The tiny model in bfloat16, forced (an AVX2-only CPU runs it too, only slower)."""
    from engine import load_engine

    return load_engine(str(tiny_model_dir), device="cpu", dtype="bfloat16")


@pytest.fixture(scope="module", params=["float32", "bfloat16"])
def dtype(request: pytest.FixtureRequest) -> str:
    """Each dtype the engine runs in on a CPU, for numerics tests that check both."""
    return request.param


@pytest.fixture(scope="module")
def dtype_engine(request: pytest.FixtureRequest, dtype: str):
    """The tiny model in ``dtype``."""
    return request.getfixturevalue("tiny_engine" if dtype == "float32" else "tiny_engine_bf16")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Real-editor tests (tests/test_editor_*.py) carry the ``editor`` marker."""
    for item in items:
        if item.path.name.startswith("test_editor_"):
            item.add_marker(pytest.mark.editor)
