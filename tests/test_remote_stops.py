"""Issue 26: what a remote request asks of the server and when it stops, against the
loopback stand-ins (tests/remote_standin.py; they follow the engines' documented APIs
and are not the engines: tests/test_llamacpp_real.py runs the same against llama.cpp).

Stop rules by mode (``stop``, ``n_predict``/``max_tokens``, ``t_max_predict_ms``), the
stream closed once a single line is complete, the leading space of a text-completion
model dropped, and every prompt kept within the served context."""
from __future__ import annotations

import time

import pytest
from remote_standin import StandinServer

from engine import InfillRequest
from engine.backends.remote import load_remote
from engine.backends.remote.backend import SINGLE_LINE_MAX_TOKENS, ServerInfo
from engine.backends.remote.http import ClientOptions
from engine.backends.remote.window import PROMPT_RESERVE_TOKENS, UNMEASURED_CHARS_PER_TOKEN
from engine.engine import Engine
from engine.errors import InputError

FAST = ClientOptions(connect_timeout_s=1.0, read_timeout_s=2.0, retries=0)
LINE = InfillRequest(prefix="def add(a, b):\n    return ", suffix="\n", max_new_tokens=200, single_line=True)
BLOCK = InfillRequest(prefix="def add(a, b):\n", suffix="\n", max_new_tokens=200)


def _engine(kind: str, url: str, **kw) -> Engine:
    return Engine(load_remote(kind, url, "standin-model", options=FAST, **kw))


@pytest.mark.parametrize("kind", ["llamacpp", "openai", "vllm", "ollama"])
def test_single_line_asks_the_server_to_stop_at_the_line_break(kind: str) -> None:
    with StandinServer(kind, pinned=False) as srv:
        eng = _engine(kind, srv.url)
        eng.infill(LINE)
        eng.infill(BLOCK)
    line, block = srv.requests
    if kind == "llamacpp":
        assert line["stop"] == ["\n"] and line["n_predict"] == SINGLE_LINE_MAX_TOKENS
        assert "t_max_predict_ms" not in line
        assert "stop" not in block and block["n_predict"] == 200 and block["t_max_predict_ms"] > 0
    elif kind == "ollama":
        assert line["options"]["stop"] == ["\n"] and line["options"]["num_predict"] == SINGLE_LINE_MAX_TOKENS
        assert "stop" not in block["options"] and block["options"]["num_predict"] == 200
    else:
        assert line["stop"] == ["\n"] and line["max_tokens"] == SINGLE_LINE_MAX_TOKENS
        assert "stop" not in block and block["max_tokens"] == 200


def test_a_blank_line_closes_the_stream_once_its_line_is_complete() -> None:
    """On a blank line the model may start with line breaks (the editor skips them), so no
    ``stop`` is sent; the stream is closed as soon as a line of text ends, and the server
    sees the connection close while it still had pieces to send."""
    with StandinServer("llamacpp") as srv:
        srv.pieces = ["\n", "    return", " x", "\n", "    more", "\n", "    and more"]
        srv.delay_s = 0.05
        request = InfillRequest(prefix="def f(x):\n    ", suffix="", max_new_tokens=64, single_line=True)
        start = time.perf_counter()
        result = _engine("llamacpp", srv.url).infill(request)
        took = time.perf_counter() - start
        for _ in range(100):
            if srv.closed_at is not None:
                break
            time.sleep(0.01)
    assert "stop" not in srv.requests[0]
    assert result.middle == "\n    return x" and result.timings["closed_early"] == 1.0
    assert result.tokens == 4 and took < 6 * srv.delay_s  # not the 7 pieces' 0.3 s
    assert srv.closed_at is not None, "the connection was kept: the server would generate on"


@pytest.mark.parametrize("prefix, expected", [
    ("def add(a, b):\n    ", "return a + b"),  # indentation already typed: the model's leading space goes
    ("x = ", "1 + 2"),
    ("def add(a, b):\n    return", " a + b"),  # no whitespace before the cursor: the space is needed
])
def test_the_leading_space_after_whitespace_is_dropped(prefix: str, expected: str) -> None:
    with StandinServer("openai") as srv:
        srv.pieces = [" " + expected.lstrip(" ").split(" ", 1)[0], " " + expected.lstrip(" ").split(" ", 1)[1]]
        drafts = list(_engine("openai", srv.url).stream(InfillRequest(prefix=prefix, suffix="\n")))
    assert drafts[-1].text == expected
    assert all(not d.text.startswith(" ") for d in drafts) or not prefix.endswith(" ")


def test_prompts_are_kept_within_the_served_context() -> None:
    """vLLM's /v1/models says 8192 tokens (the stand-in); a 200 KB file is cut to whole lines
    near the cursor, by the conservative estimate when the server has no tokenizer route."""
    lines = [f"value_{i} = compute({i}, 'something long enough')\n" for i in range(4000)]
    prefix = "".join(lines[:3000]) + "result = "
    suffix = "".join(lines[3000:])
    with StandinServer("vllm", pinned=False) as srv:
        eng = _engine("vllm", srv.url)
        eng.infill(InfillRequest(prefix=prefix, suffix=suffix, max_new_tokens=32))
        assert eng.context_tokens == 8192
    prompt = srv.requests[0]["prompt"]
    room = 8192 - 32 - PROMPT_RESERVE_TOKENS
    assert len(prompt) <= room * UNMEASURED_CHARS_PER_TOKEN + 200  # + the suffix's label lines
    assert len(prompt) > room * UNMEASURED_CHARS_PER_TOKEN // 2  # the window is used, not starved
    assert prompt.endswith("value_2999 = compute(2999, 'something long enough')\nresult = ")
    assert "\nvalue_3000 = compute(3000" in prompt  # the suffix's first lines, whole


def test_the_setting_sets_the_window_and_a_window_too_small_is_told() -> None:
    with StandinServer("llamacpp") as srv:
        eng = _engine("llamacpp", srv.url, context_tokens=256)
        eng.infill(InfillRequest(prefix="x = 1\n" * 2000, suffix="y = 2\n" * 2000, max_new_tokens=32))
        body = srv.requests[0]
        assert len(body["input_prefix"]) + len(body["input_suffix"]) <= (256 - 32 - PROMPT_RESERVE_TOKENS) * 3
        assert body["input_prefix"].endswith("x = 1\n") and body["input_suffix"].startswith("y = 2\n")
        with pytest.raises(InputError, match=r"context \(256 tokens\) leaves no room"):
            eng.infill(InfillRequest(prefix="x", suffix="y", max_new_tokens=250))


def test_llama_server_behind_the_openai_kind_is_named_once() -> None:
    with StandinServer("openai") as srv:
        backend = load_remote("openai", srv.url, "m", options=FAST)
        backend.check_server(ServerInfo(4096, llama_cpp=True))
        assert len(backend.notes) == 1 and "ignores the suffix" in backend.notes[0]
        assert "llamacpp" in backend.notes[0]
