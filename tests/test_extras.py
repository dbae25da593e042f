"""Optional extras: `pip install diffill` brings only what the server needs; a feature whose
package is in an extra that is not installed stops with one line naming that extra."""
from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from diffill.main import main
from engine.errors import DeviceError

ROOT = Path(__file__).resolve().parent.parent


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_matplotlib_is_in_the_bench_extra_only() -> None:
    project = _project()
    core = {Requirement(r).name for r in project["dependencies"]}
    assert "matplotlib" not in core
    extras = project["optional-dependencies"]
    assert "matplotlib" in {Requirement(r).name for r in extras["bench"]}
    # the test extra still brings everything the suite needs (scripts/setup.sh installs .[test])
    assert "diffill[bench]" in extras["test"]


def test_bench_speed_without_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    import diffill.bench

    def no_model(args: object) -> None:
        raise AssertionError("the model must not be loaded when the figure cannot be drawn")

    monkeypatch.setattr(diffill.bench, "_load", no_model)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ImportError
    assert main(["bench", "speed", "--no-progress"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("diffill: error: ") and "matplotlib" in lines[0]
    assert "pip install 'diffill[bench]'" in lines[0]


def test_plot_without_matplotlib_raises_a_user_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from engine.bench.plot import plot_speed
    from engine.extras import MissingExtra

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingExtra, match=r"diffill\[bench\]"):
        plot_speed({}, tmp_path / "speed.png")


@pytest.mark.parametrize("which", ["native", "block"])
def test_quantized_weights_without_bitsandbytes_name_the_quant_extra(monkeypatch: pytest.MonkeyPatch,
                                                                     which: str) -> None:
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)
    if which == "native":
        from engine.backends.native_loader import quantization_kwargs

        call = lambda: quantization_kwargs("int4", "cuda")  # noqa: E731 - the device string only; no GPU is used
    else:
        from engine.backends.block_loading import _quantization_kwargs

        call = lambda: _quantization_kwargs("int8", "cuda")  # noqa: E731
    with pytest.raises(DeviceError, match=r"bitsandbytes.*pip install 'diffill\[quant\]'") as info:
        call()
    assert "\n" not in str(info.value)
