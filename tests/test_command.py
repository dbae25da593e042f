"""The `diffill` command itself: its version, and `python -m diffill` being the same command."""
from __future__ import annotations

import subprocess
import sys
from importlib import metadata

import pytest

from diffill import __version__
from diffill.main import main


def test_version_is_the_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"diffill {__version__}"
    assert metadata.version("diffill") == __version__  # pyproject.toml reads it from diffill/__init__.py


def test_python_m_diffill_is_the_command() -> None:
    proc = subprocess.run([sys.executable, "-m", "diffill", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for command in ("fill", "serve", "bench", "doctor", "models", "train"):
        assert command in proc.stdout
