"""`diffill doctor` reports versions and a working fill, and fails on a broken model."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_cli_fill import diffill  # tests/ is on sys.path (rootdir-relative imports)

#: starts processes or trains/loads models: left out of the quick loop (pytest -m 'not slow and not editor')
pytestmark = pytest.mark.slow


def test_doctor_ok_with_tiny_model(tiny_model_dir: Path) -> None:
    proc = diffill("doctor", "--model", str(tiny_model_dir), "--device", "cpu", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    for key in ("python", "torch", "transformers", "tokenizers", "pygls", "cuda", "model_path"):
        assert report[key]
    assert report["model_path"] == str(tiny_model_dir.resolve())
    assert report["model_load"].startswith("ok") and report["fill"] == "ok"
    # the catalog model for typing and the one for the fill command here, by predicted speed (issue 31)
    assert any(key.startswith("speed_probe_") for key in report), report
    advice = re.compile(r"none of the catalog models|[\w.:-]+ \((CPU|GPU) \w+, ~[\d.]+ (ms|s|min) per")
    for key in ("recommended_typing_model", "recommended_fill_model"):
        assert advice.match(report[key]), report


def test_doctor_fails_on_broken_model(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    proc = diffill("doctor", "--model", str(tmp_path))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "model_load: FAILED" in proc.stdout and "status: FAILED" in proc.stdout
