"""`diffill fill --jsonl` and `diffill doctor` through each remote backend kind,
against the loopback stand-ins of tests/remote_standin.py (which follow vLLM
>= 0.24's OpenAI-compatible server, the OpenAI completions API with suffix,
llama.cpp's llama-server /infill and Ollama's /api/generate as documented;
they are not the engines)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from remote_standin import StandinServer

pytestmark = pytest.mark.slow  # starts diffill processes
ROOT = Path(__file__).resolve().parent.parent
LINE = json.dumps({"prefix": "def add(a, b):\n    ", "suffix": "\n\nprint(add(1, 2))\n", "id": 7}) + "\n"


def _diffill(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "diffill", *args], input=stdin, capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


@pytest.mark.parametrize("kind, model, prefix_field, suffix_field", [
    ("vllm", "google/diffusiongemma-26B-A4B-it", "prompt", "prompt"),  # vLLM: the suffix rides in the prompt
    ("openai", "fim-model", "prompt", "suffix"),
    ("llamacpp", None, "input_prefix", "input_suffix"),
    ("ollama", "standin-fim", "prompt", "suffix"),
])
def test_fill_jsonl_answers_through_each_kind(kind: str, model: str | None, prefix_field: str,
                                              suffix_field: str) -> None:
    with StandinServer(kind) as srv:
        proc = _diffill("fill", "--jsonl", "--backend", kind, "--url", srv.url,
                        *(["--model", model] if model else []), stdin=LINE)
        assert proc.returncode == 0, proc.stderr
        record = json.loads(proc.stdout)
        assert record["middle"] == "return a + b" and record["id"] == 7
        # issue 26: what is counted is named: streamed pieces, not the model's forward passes
        assert record["pieces"] == 3 and "forwards" not in record
        body = srv.requests[0]
        assert body[prefix_field].endswith("def add(a, b):\n    ")
        if kind == "vllm":
            assert "print(add(1, 2))" in body["prompt"] and "suffix" not in body and "vllm_xargs" not in body
        else:
            assert body[prefix_field] == "def add(a, b):\n    " and body[suffix_field] == "\n\nprint(add(1, 2))\n"


def test_fill_jsonl_reports_a_server_error_per_line_without_a_traceback() -> None:
    with StandinServer("vllm") as srv:  # `openai` sends `suffix`; vLLM answers 400
        proc = _diffill("fill", "--jsonl", "--backend", "openai", "--url", srv.url, "--model", "m", stdin=LINE)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    assert "HTTP 400: suffix is not currently supported" in json.loads(proc.stdout)["error"]


def test_doctor_remote_reports_models_and_round_trip() -> None:
    with StandinServer("vllm", pinned=False) as srv:
        proc = _diffill("doctor", "--backend", "vllm", "--url", srv.url, "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["reachable"].startswith("ok") and report["served_models"] == "standin-model (8192 tokens)"
    assert report["fill"] == "ok" and report["fill_round_trip_ms"] > 0
    assert report["vllm_infill"].startswith("prompt carrying the suffix")
    assert report["served_context_tokens"] == "8192 (the server)"  # vLLM's max_model_len: every prompt fits it


def test_doctor_remote_unreachable_fails_in_one_line() -> None:
    with StandinServer("ollama") as srv:
        url = srv.url
    proc = _diffill("doctor", "--backend", "ollama", "--url", url, "--model", "m")
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr
    assert "reachable: FAILED: cannot reach the server" in proc.stdout and "status: FAILED" in proc.stdout
