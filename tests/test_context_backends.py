"""Repository context reaches every backend in its own form (one helper,
``engine.context_format``): llama.cpp's ``input_extra``; file-path-headed
pieces before the prefix for the text-prompt servers (loopback stand-ins,
tests/remote_standin.py), for DiffusionGemma (the tiny model of
tests/block_tiny.py) and for DreamOn (the tiny native fixture)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from block_tiny import backend, fresh, model_dir  # noqa: F401 - fixtures
from remote_standin import StandinServer

from engine import CancellationToken, InfillRequest
from engine.backends.remote.http import ClientOptions
from engine.backends.remote.vllm import CURSOR_LABEL, SUFFIX_LABEL
from engine.types import ContextPiece

PREFIX = "def go(x):\n    return helper("
SUFFIX = ")\n"
NEAR = ContextPiece("pkg/util.py", "def helper(a):\n    return a + 1\n")
FAR = ContextPiece("pkg/other.py", "def unrelated():\n    pass\n")
REQUEST = InfillRequest(prefix=PREFIX, suffix=SUFFIX, max_new_tokens=8, context=(FAR, NEAR), path="pkg/main.py")
HEADED = ("# file: pkg/other.py\ndef unrelated():\n    pass\n\n"
          "# file: pkg/util.py\ndef helper(a):\n    return a + 1\n\n# file: pkg/main.py\n")
FAST = ClientOptions(connect_timeout_s=1.0, read_timeout_s=1.0, retries=0, backoff_s=0.01)


def _sent(kind: str, request: InfillRequest, **server) -> list[dict]:
    from engine.backends.remote import load_remote
    from engine.engine import Engine

    with StandinServer(kind, **server) as srv:
        assert Engine(load_remote(kind, srv.url, "standin-model", options=FAST)).infill(request).middle
        return srv.requests


def test_llamacpp_gets_the_pieces_as_input_extra_most_relevant_last() -> None:
    """llama.cpp tools/server README, POST /infill: ``input_extra: [{filename, text}]``."""
    [body] = _sent("llamacpp", REQUEST)
    assert body["input_extra"] == [{"filename": "pkg/other.py", "text": FAR.text},
                                   {"filename": "pkg/util.py", "text": NEAR.text}]
    assert body["input_prefix"] == PREFIX and body["input_suffix"] == SUFFIX  # the cursor's file untouched
    [plain] = _sent("llamacpp", InfillRequest(prefix=PREFIX, suffix=SUFFIX, max_new_tokens=8))
    assert plain["input_extra"] == []


def test_llamacpp_pieces_are_cut_to_the_window() -> None:
    huge = ContextPiece("pkg/huge.py", "".join(f"x_{i} = {i}\n" for i in range(2000)))
    [body] = _sent("llamacpp", InfillRequest(prefix=PREFIX, suffix=SUFFIX, max_new_tokens=8, context=(huge, NEAR)))
    assert body["input_extra"] == [{"filename": "pkg/util.py", "text": NEAR.text}]  # least relevant dropped first
    [alone] = _sent("llamacpp", InfillRequest(prefix=PREFIX, suffix=SUFFIX, max_new_tokens=8, context=(huge,)))
    [cut] = alone["input_extra"]
    assert cut["text"].startswith("x_0 = 0\n") and 10 < cut["text"].count("\n") < 2000  # its first lines


@pytest.mark.parametrize("kind", ["openai", "ollama"])
def test_text_prompt_servers_get_headed_pieces_before_the_prefix(kind: str) -> None:
    [body] = _sent(kind, REQUEST)
    assert body["prompt"] == HEADED + PREFIX and body["suffix"] == SUFFIX


def test_vllm_prompt_carries_the_pieces_then_the_suffix_then_the_prefix() -> None:
    [body] = _sent("vllm", REQUEST)
    assert "suffix" not in body and body["prompt"] == (
        "# file: pkg/other.py\ndef unrelated():\n    pass\n\n# file: pkg/util.py\n"
        f"def helper(a):\n    return a + 1\n\n# file: {SUFFIX_LABEL}\n)\n\n# file: {CURSOR_LABEL}\n{PREFIX}")
    [plain] = _sent("vllm", InfillRequest(prefix=PREFIX, suffix=SUFFIX, max_new_tokens=8))
    assert "pkg/" not in plain["prompt"] and plain["prompt"].endswith(PREFIX)


def _drain(runner):
    try:
        while True:
            next(runner)
    except StopIteration as stop:
        return stop.value


@pytest.mark.parametrize("mode", ["pinned", "prompt"])
def test_diffusion_gemma_encodes_the_pieces_before_the_prefix(fresh, mode: str) -> None:  # noqa: F811
    fresh.mode = mode
    seen: list[list[int]] = []
    encode = fresh.cache.encode

    def spy(ids, *args, **kwargs):
        seen.append(list(ids))
        return encode(ids, *args, **kwargs)

    fresh.cache.encode = spy
    try:
        _drain(fresh.run(REQUEST, CancellationToken()))
        with_context = fresh.tokenizer.decode(seen[-1])
        _drain(fresh.run(InfillRequest(prefix=PREFIX, suffix=SUFFIX, max_new_tokens=8), CancellationToken()))
        without = fresh.tokenizer.decode(seen[-1])
    finally:
        fresh.cache.encode = encode
    assert HEADED in with_context and with_context.index(HEADED) < with_context.index(PREFIX)
    assert "# file:" not in without
    if mode == "pinned":
        assert seen[0][0] == fresh.bos_id and with_context.replace("<bos>", "", 1) == HEADED + PREFIX


def test_dreamon_puts_the_pieces_before_the_prefix() -> None:
    from engine.backends.native_loader import load_native

    fixture = Path(__file__).parent / "fixtures" / "families" / "dreamon"
    b = load_native(str(fixture), "dreamon", device="cpu", torch_dtype=torch.float32)
    seen: list[list[int]] = []
    denoise = b.denoise

    def spy(prefix_ids, *args, **kwargs):
        seen.append(list(prefix_ids))
        return denoise(prefix_ids, *args, **kwargs)

    b.denoise = spy  # type: ignore[method-assign]
    _drain(b.run(REQUEST, CancellationToken()))
    _drain(b.run(InfillRequest(prefix=PREFIX, suffix=SUFFIX, max_new_tokens=8), CancellationToken()))
    with_context, without = (b.tokenizer.decode(ids) for ids in seen)
    # the fixture's window is 128 tokens: the least relevant piece does not fit, the nearest keeps its first line
    assert with_context.startswith("# file: pkg/util.py\ndef helper(a):\n") and "pkg/other.py" not in with_context
    assert with_context.index("# file: pkg/main.py\n") < with_context.index(PREFIX)
    assert "# file:" not in without and PREFIX in without
