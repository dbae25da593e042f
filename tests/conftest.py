"""Shared fixtures: a tiny randomly initialised model written to disk once per session.

It has exactly the bundled model's format (ModernBERT masked LM + byte-level BPE
tokenizer + diffill.json), so loader, sampler and server tests run against real
files without depending on the trained weights.

``--device cuda`` (default ``cpu``) runs the device-aware tests on the GPU: those
that use the ``device`` fixture, directly or through a model fixture built on it
(``tiny_engine``, ``dtype_engine``, tests/block_tiny.py's ``backend``); every other
test is skipped there (scripts/device/gpu-check.sh, docs/DEVICE.md).
"""
from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest


def _sample_texts() -> list[str]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted((stdlib / "json").glob("*.py")) + sorted((stdlib / "email").glob("*.py"))[:5]
    return [f.read_text(encoding="utf-8", errors="replace") for f in files]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--device", default="cpu", choices=("cpu", "cuda"),
                     help="where the device-aware tests (those using the `device` fixture) put their models; "
                          "with cuda every other test is skipped")


@pytest.fixture(scope="session")
def device(request: pytest.FixtureRequest) -> str:
    """The device the device-aware tests run on (``--device``)."""
    return str(request.config.getoption("--device"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from engine.training.model_factory import make_random_model

    out = tmp_path_factory.mktemp("tiny-model")
    return make_random_model(out, _sample_texts(), size="test", vocab_size=512, context=256)


@pytest.fixture(scope="session")
def tiny_engine(tiny_model_dir: Path, device: str):
    """The tiny model in float32 on ``device``, on every CPU too (the engine's own choice is
    bfloat16 where the CPU has bf16 units): a test's outcome must not depend on the machine it lands on."""
    from engine import load_engine

    return load_engine(str(tiny_model_dir), device=device, dtype="float32")


@pytest.fixture(scope="session")
def tiny_engine_bf16(tiny_model_dir: Path, device: str):
    """The tiny model in bfloat16, forced (an AVX2-only CPU runs it too, only slower)."""
    from engine import load_engine

    return load_engine(str(tiny_model_dir), device=device, dtype="bfloat16")


@pytest.fixture(scope="module", params=["float32", "bfloat16"])
def dtype(request: pytest.FixtureRequest) -> str:
    """Each dtype the engine runs in on a CPU (and on a GPU: ``--device cuda``), for numerics
    tests that check both."""
    return request.param


@pytest.fixture(scope="module")
def dtype_engine(request: pytest.FixtureRequest, dtype: str, device: str):
    """The tiny model in ``dtype`` on ``device`` (named here so that the tests using it count
    as device-aware: the engine fixture is looked up by name, out of pytest's sight)."""
    return request.getfixturevalue("tiny_engine" if dtype == "float32" else "tiny_engine_bf16")


# Test files that write the same files in the tree (editors/vscode/diffill.vsix, built by
# `npm run package`): pytest-xdist keeps each group on one worker, one file after another.
SHARED_TREE_GROUPS = {
    "test_editor_vscode.py": "vscode-package",
    "test_editor_vscode_package.py": "vscode-package",
    "test_screenshots.py": "vscode-package",
}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist turns the group into the node id
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Real-editor tests (tests/test_editor_*.py) carry the ``editor`` marker; on a device
    other than the CPU, tests that do not use the ``device`` fixture are skipped.

    Each test also gets an ``xdist_group``: its file, or the group of files that write the
    same place in the tree.  Under ``pytest -n N --dist loadgroup`` (scripts/test.sh) a file's
    tests then share one worker and its module fixtures (one server start, one editor start),
    and slow-marked files are queued first so that the longest ones do not start last."""
    on_cpu = config.getoption("--device") == "cpu"
    for item in items:
        if item.path.name.startswith("test_editor_"):
            item.add_marker(pytest.mark.editor)
        if not on_cpu and "device" not in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.skip(reason="not device-aware: runs on the CPU only"))
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(SHARED_TREE_GROUPS.get(item.path.name, item.path.name)))
    if hasattr(config, "workerinput"):  # a pytest-xdist worker
        slow_files = {item.path for item in items if item.get_closest_marker("slow")}
        items.sort(key=lambda item: item.path not in slow_files)  # stable: file order kept within each half


def pytest_configure(config: pytest.Config) -> None:
    """``--device cuda`` without a CUDA GPU is a usage error, not a run of skips or failures."""
    if config.getoption("--device", "cpu") == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise pytest.UsageError("--device cuda: torch sees no CUDA GPU here")
