"""`diffill bench lsp --files DIR` (lsp_server/bench/real_files.py): real files,
cursor sites, typing, and one small run against the real server with the tiny model."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lsp_server.bench.real_files import TYPED, Site, breakdown, interleaved, overrides, pick_files, site_in

CODE = "import os\n\n\ndef main(argv):\n    value = compute_the_answer(argv, 42)\n    return value\n"


def test_a_site_cuts_a_code_line_near_the_middle(tmp_path: Path):
    path = tmp_path / "a.py"
    path.write_text("# header\n" * 3 + CODE + "x = 1\n" * 3)
    site = site_in(path)
    assert site is not None
    typed = site.prefix.rsplit("\n", 1)[1]
    line = typed + site.truth
    lines = path.read_text().split("\n")
    assert line in lines and len(line.strip()) >= 12 and not line.strip().startswith("#")
    assert abs(lines.index(line) - len(lines) // 2) <= 1  # the code line nearest the middle
    assert site.suffix.startswith("\n" + lines[lines.index(line) + 1])
    assert site.text() == path.read_text().replace(site.truth, "", 1)
    assert len(site.truth) > 0 and len(typed.strip()) > TYPED
    headed = site.headed("# typing\n")
    assert headed.position()[0] == site.position()[0] + 1


def test_files_are_spread_and_filtered_by_size(tmp_path: Path):
    for i in range(10):
        (tmp_path / f"m{i}.py").write_text(CODE * 60)
    (tmp_path / "tiny.py").write_text("x = 1\n")
    (tmp_path / "notes.txt").write_text(CODE * 60)
    picked = pick_files(tmp_path, 4)
    assert len(picked) == 4 and all(p.suffix == ".py" and p.name != "tiny.py" for p in picked)
    assert picked[0].name == "m0.py" and picked[-1].name == "m9.py"
    with pytest.raises(ValueError, match="no .py files"):
        pick_files(tmp_path / "nothing", 3)


def test_no_measurement_follows_one_on_the_same_site():
    """The engine may reuse the last request's keys and values: the invoked request
    on a site must not be the base of the same site's typing (nor the reverse)."""
    sites = [Site(Path(f"m{i}.py"), f"p{i}", "t", "s") for i in range(4)]
    order = [(n, kind) for n, _, kind in interleaved(sites)]
    assert sorted(order) == sorted((n, kind) for n in range(4) for kind in ("invoked", "automatic"))
    assert all(a[0] != b[0] for a, b in zip(order, order[1:]))
    assert all(order.index((n, "invoked")) < order.index((n, "automatic")) for n in range(4))


def test_the_breakdown_counts_only_answered_requests_of_each_kind():
    def timing(kind: str, engine: float, outcome: str = "completed", cached: bool = False) -> dict:
        return {"uri": f"file:///diffill-bench/{kind}/3/a.py", "engineMs": engine, "queueMs": 1.0,
                "debounceMs": 0.0, "serverMs": 2.0, "outcome": outcome, "cached": cached}
    parts = breakdown([timing("invoked", 300.0), timing("automatic", 40.0, "cancelled"),
                       timing("automatic", 0.0, cached=True), timing("automatic", 150.0)])
    assert parts["invoked"] == {"engine_ms": 300.0, "queue_ms": 1.0, "debounce_ms": 0.0, "server_ms": 2.0,
                                "requests": 1}
    assert parts["automatic"]["engine_ms"] == 150.0 and parts["automatic"]["requests"] == 1
    assert breakdown([])["invoked"]["requests"] == 0


def test_setting_overrides_parse_json_or_words():
    assert overrides(["debounceMs=0", "multiline=never", "drafts=false"]) == {
        "debounceMs": 0, "multiline": "never", "drafts": False}
    with pytest.raises(ValueError):
        overrides(["debounceMs"])


@pytest.mark.slow
def test_a_small_run_measures_both_kinds_against_the_real_server(tiny_model_dir: Path, tmp_path: Path):
    for i in range(2):
        (tmp_path / "src" / f"m{i}.py").parent.mkdir(exist_ok=True)
        (tmp_path / "src" / f"m{i}.py").write_text(CODE * 40)
    out = tmp_path / "real.json"
    proc = subprocess.run([sys.executable, "-m", "diffill", "bench", "lsp", "--files", str(tmp_path / "src"),
                           "--count", "2", "--warmup", "1", "--model", str(tiny_model_dir), "--device", "cpu",
                           "--typing-ms", "30", "--set", "maxNewTokens=8", "--quiet", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())
    assert result["sites"] == 2 and result["settings"]["maxNewTokens"] == 8
    assert result["invoked_ms"]["n"] == 2 and result["automatic_ms"]["n"] == 2
    assert all(r["invoked_ms"] > 0 and r["automatic_ms"] > 0 for r in result["rows"])
    assert result["engine_ms"]["n"] >= 4  # both kinds reached the engine: no cache answered them
    assert "partial" not in result
