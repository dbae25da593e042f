"""`diffill fill`: JSONL round trip, one-off fill, and one-line errors for bad input.

These run the real `diffill` command in a subprocess against the tiny model.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from diffill.fill import split_at

#: starts processes or trains/loads models: left out of the quick loop (pytest -m 'not slow and not editor')
pytestmark = pytest.mark.slow


def diffill(*args: str, stdin: str | bytes | None = None, timeout: float = 240,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the installed `diffill` script (or the module) with test-friendly settings (plus ``env``)."""
    script = Path(sys.executable).with_name("diffill")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "diffill"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           **(env or {})}
    data = stdin.encode() if isinstance(stdin, str) else stdin
    proc = subprocess.run([*command, *args], input=data, capture_output=True, env=env, timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode("utf-8", "replace"),
                                       proc.stderr.decode("utf-8", "replace"))


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode != 0
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("diffill: error:")]
    assert len(errors) == 1, proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


# --- position splitting (no model) --------------------------------------------

def test_split_at_is_one_based_and_counts_characters() -> None:
    text = "αβγ = 1\nx = αβ\n"
    assert split_at(text, 1, 1) == ("", text)
    assert split_at(text, 1, 4) == ("αβγ", " = 1\nx = αβ\n")
    assert split_at(text, 2, 7) == ("αβγ = 1\nx = αβ", "\n")  # one past the last character
    assert split_at(text, 3, 1) == (text, "")  # the empty line after the final newline


def test_split_at_crlf_and_bounds() -> None:
    assert split_at("ab\r\ncd", 1, 3) == ("ab", "\r\ncd")
    with pytest.raises(ValueError, match="column 4"):
        split_at("ab\r\ncd", 1, 4)
    for line, col in [(0, 1), (3, 1), (1, 0)]:
        with pytest.raises(ValueError):
            split_at("ab\ncd", line, col)


# --- subprocess runs -----------------------------------------------------------

def test_jsonl_round_trip_with_bad_lines(tiny_model_dir: Path) -> None:
    lines = [
        json.dumps({"prefix": "def add(a, b):\n    return ", "suffix": "\n", "max_new_tokens": 4, "id": 1}),
        "{not json",
        json.dumps({"suffix": "x"}),
        json.dumps({"prefix": 3}),
        json.dumps({"prefix": "x = ", "max_new_tokens": "many"}),
        json.dumps({"prefix": "", "suffix": ""}),  # engine InputError
        json.dumps({"prefix": "x = ", "max_new_tokens": 0}),  # request ValueError
        json.dumps([1, 2]),
        "",  # blank lines are skipped
        json.dumps({"prefix": "import os\n", "suffix": "print(1)\n", "language": "python", "max_new_tokens": 3}),
    ]
    proc = diffill("fill", "--jsonl", "--model", str(tiny_model_dir), "--device", "cpu",
                   stdin="\n".join(lines) + "\n")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(out) == 9
    first, last = out[0], out[-1]
    for record in (first, last):
        assert set(record) >= {"middle", "ms", "forwards"} and "error" not in record
        assert isinstance(record["middle"], str) and record["forwards"] >= 1 and record["ms"] >= 0
    assert first["id"] == 1
    errors = [r.get("error", "") for r in out[1:-1]]
    assert all(errors), out
    assert "invalid JSON" in errors[0]
    assert "prefix" in errors[1] and "prefix" in errors[2]
    assert "max_new_tokens" in errors[3]
    assert "empty" in errors[4]
    assert "max_new_tokens" in errors[5]
    assert "object" in errors[6]


def test_jsonl_invalid_utf8_line_continues(tiny_model_dir: Path) -> None:
    good = json.dumps({"prefix": "x = ", "max_new_tokens": 2}).encode()
    proc = diffill("fill", "--jsonl", "--model", str(tiny_model_dir), "--device", "cpu",
                   stdin=b'{"prefix": "\xff"}\n' + good + b"\n")
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert proc.returncode == 0 and "UTF-8" in out[0]["error"] and "middle" in out[1]


def test_one_off_fill_prints_the_middle(tiny_model_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "add.py"
    source.write_text("def add(a, b):\n    return \n", encoding="utf-8")
    proc = diffill("fill", str(source), "--line", "2", "--col", "12", "--max-new-tokens", "4",
                   "--steps", "2", "--model", str(tiny_model_dir), "--device", "cpu", "--json")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert isinstance(record["middle"], str) and 1 <= record["forwards"] <= 2
    plain = diffill("fill", str(source), "--line", "2", "--col", "12", "--max-new-tokens", "4",
                    "--steps", "2", "--model", str(tiny_model_dir), "--device", "cpu")
    assert plain.returncode == 0 and plain.stdout == record["middle"]  # same seed, same middle


@pytest.fixture()
def sample_file(tmp_path: Path) -> Path:
    path = tmp_path / "sample.py"
    path.write_text("x = 1\ny = 2\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(("name", "position", "needle"), [
    ("missing.py", ("1", "1"), "no such file"),
    ("latin1.py", ("1", "1"), "not UTF-8"),
    ("sample.py", ("9", "1"), "line 9"),
    ("sample.py", ("1", "99"), "column 99"),
    ("sample.py", ("0", "1"), "line 0"),
])
def test_bad_file_input_is_one_line_error(sample_file: Path, name: str, position: tuple[str, str],
                                          needle: str) -> None:
    (sample_file.parent / "latin1.py").write_bytes("café = 1\n".encode("latin-1"))
    proc = diffill("fill", str(sample_file.parent / name), "--line", position[0], "--col", position[1])
    assert_one_line_error(proc, needle)


def test_unknown_model_name_is_one_line_error(sample_file: Path) -> None:
    proc = diffill("fill", str(sample_file), "--line", "1", "--col", "1", "--model", "no-such-model")
    assert_one_line_error(proc, "no-such-model")


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_broken_weights_are_one_line_error(tiny_model_dir: Path, sample_file: Path, tmp_path: Path,
                                           damage: str) -> None:
    broken = tmp_path / f"model-{damage}"
    shutil.copytree(tiny_model_dir, broken)
    weights = broken / "model.safetensors"
    if damage == "missing":
        weights.unlink()
    else:
        weights.write_bytes(b"\x00garbage, not safetensors" * 10)
    proc = diffill("fill", str(sample_file), "--line", "1", "--col", "1", "--model", str(broken),
                   "--device", "cpu")
    assert_one_line_error(proc)


def test_jsonl_model_failure_exits_nonzero(tmp_path: Path) -> None:
    proc = diffill("fill", "--jsonl", "--model", str(tmp_path / "nowhere"),
                   stdin=json.dumps({"prefix": "x"}) + "\n")
    assert_one_line_error(proc)


def test_missing_position_is_usage_error(sample_file: Path) -> None:
    assert_one_line_error(diffill("fill", str(sample_file), "--line", "1"), "--col")
