"""Faults: the real server over stdio, with a broken model, GPU or engine.

The server must stay up, tell the user once (``window/showMessage``), fall
back where the settings allow it, and recover on a configuration change
without a restart.  Faults that cannot happen for real on this machine (a
forward that fails, a slow load) are injected by tests/fault_server.py.
"""
from __future__ import annotations

import asyncio
import json
import shutil
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient
from test_lsp_server import CURSOR, SERVER_ENV, inline_params, open_doc, start, stats

#: starts processes or trains/loads models: left out of the quick loop (pytest -m 'not slow and not editor')
pytestmark = pytest.mark.slow

FAULT_SERVER = str(Path(__file__).with_name("fault_server.py"))


@asynccontextmanager
async def server(options: dict, faults: dict | None = None) -> AsyncIterator[LanguageClient]:
    """A started, initialized client talking to a (possibly faulty) server."""
    env = {**SERVER_ENV, "DIFFILL_TEST_FAULTS": json.dumps(faults or {})}
    config = ClientServerConfig(server_command=[sys.executable, FAULT_SERVER], server_env=env)
    client = await config.start()
    try:
        await start(client, {"device": "cpu", "threads": 1, "maxNewTokens": 4, "debounceMs": 0,
                             "multiline": "always", **options})
        yield client
    finally:  # also after a failed assertion: a server never told to exit keeps stop() waiting
        try:
            await asyncio.wait_for(client.shutdown_session(), 30)
        finally:
            await client.stop()


def popups(client: LanguageClient, kind: types.MessageType | None = None) -> list[str]:
    return [m.message for m in client.messages if kind is None or m.type == kind]


def states(client: LanguageClient) -> list[str]:
    return [s["state"] for s in client.statuses]


async def complete(client: LanguageClient) -> list[str]:
    result = await client.text_document_inline_completion_async(inline_params(*CURSOR))
    return [item.insert_text for item in result.items] if result else []


async def answered(client: LanguageClient) -> bool:
    """True when the engine ran the request to the end without an error.

    Whether the text is non-empty is the model's business (a random test model
    may write only bytes that are not valid text, which post-processing drops);
    these tests are about the server surviving faults.
    """
    before = await stats(client)
    await complete(client)
    after = await stats(client)
    served = after["completed"] + after["cacheHits"] > before["completed"] + before["cacheHits"]
    assert served and after["errors"] == before["errors"], (before, after)
    return True


async def until(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def configure(client: LanguageClient, settings: dict) -> None:
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"diffill": settings}))


async def test_status_is_busy_only_while_a_slow_request_runs(tiny_model_dir: Path) -> None:
    """A request still in the engine after 100 ms turns the status busy, then ready;
    a quick one (here: the cache) leaves it at ready, with no notification at all."""
    async with server({"model": str(tiny_model_dir)}, {"forward_delay_s": 0.05}) as client:
        open_doc(client)
        await complete(client)  # loads the model, then at least one 50 ms forward per token
        assert states(client) == ["loading", "ready", "busy", "ready"], states(client)
        await complete(client)  # the same request again: answered from the cache
        assert len(states(client)) == 4, states(client)


async def test_missing_weights_told_once_then_recovered_by_config_change(tiny_model_dir: Path) -> None:
    async with server({"model": "/nonexistent/model"}) as client:
        open_doc(client)
        for _ in range(3):
            assert await complete(client) == []
        errors = popups(client, types.MessageType.Error)
        assert len(errors) == 1 and "/nonexistent/model" in errors[0], errors
        configure(client, {"model": str(tiny_model_dir)})
        await until(lambda: states(client)[-1] == "ready")
        assert await answered(client)
        assert len(popups(client, types.MessageType.Error)) == 1


def corrupt_copy(model_dir: Path, dest: Path) -> Path:
    shutil.copytree(model_dir, dest)
    for weights in dest.glob("*.safetensors"):
        weights.write_bytes(weights.read_bytes()[: 100])
    return dest


async def test_corrupt_weights_fall_back_to_the_bundled_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    broken = corrupt_copy(tiny_model_dir, tmp_path / "broken")
    async with server({"model": str(broken), "fallbackToBundled": True}) as client:
        open_doc(client)
        assert await answered(client)
        warnings = popups(client, types.MessageType.Warning)
        assert len(warnings) == 1 and "bundled model" in warnings[0] and "broken" in warnings[0], warnings
        ready = [s for s in client.statuses if s["state"] == "ready"]
        assert "diffill-tiny" in ready[-1]["model"]
        # the user repairs the files: any configuration change retries their model?  No:
        # a fallback load succeeded, so nothing failed; a changed model setting reloads.
        fixed = tmp_path / "fixed"
        shutil.copytree(tiny_model_dir, fixed)
        configure(client, {"model": str(fixed)})
        await until(lambda: client.statuses[-1]["state"] == "ready" and "fixed" in client.statuses[-1]["model"])
        assert await answered(client)


async def test_corrupt_weights_without_fallback_recover_when_files_are_fixed(
        tiny_model_dir: Path, tmp_path: Path) -> None:
    model = corrupt_copy(tiny_model_dir, tmp_path / "model")
    async with server({"model": str(model)}) as client:
        open_doc(client)
        assert await complete(client) == []
        assert len(popups(client, types.MessageType.Error)) == 1
        shutil.rmtree(model)
        shutil.copytree(tiny_model_dir, model)  # repaired in place: same setting
        configure(client, {"maxNewTokens": 4})  # any change retries a failed load
        await until(lambda: states(client)[-1] == "ready")
        assert await answered(client)


async def test_gpu_unavailable_at_start_falls_back_to_cpu(tiny_model_dir: Path) -> None:
    pytest.importorskip("torch")
    import torch

    assert not torch.cuda.is_available(), "this test needs a machine without a GPU"
    async with server({"model": str(tiny_model_dir), "device": "cuda"}) as client:
        open_doc(client)
        assert await answered(client)
        warnings = popups(client, types.MessageType.Warning)
        assert len(warnings) == 1 and "CPU" in warnings[0], warnings
        assert client.statuses[-1]["device"] == "cpu"


async def test_gpu_unavailable_without_fallback_is_an_error_until_reconfigured(tiny_model_dir: Path) -> None:
    async with server({"model": str(tiny_model_dir), "device": "cuda", "fallbackToCpu": False}) as client:
        open_doc(client)
        assert await complete(client) == []
        errors = popups(client, types.MessageType.Error)
        assert len(errors) == 1 and "cuda" in errors[0].lower(), errors
        configure(client, {"device": "cpu"})
        await until(lambda: states(client)[-1] == "ready")
        assert await answered(client)


async def test_exception_mid_request_is_told_once_and_the_next_request_works(tiny_model_dir: Path) -> None:
    # forwards 2-5 fail: the first request fails after one good step, then
    # the next three fail at their first step; later forwards succeed
    async with server({"model": str(tiny_model_dir), "steps": 2}, {"fail_forwards": [2, 3, 4, 5]}) as client:
        open_doc(client)
        for _ in range(4):
            assert await complete(client) == []
        errors = popups(client, types.MessageType.Error)
        assert len(errors) == 1 and "injected fault" in errors[0], errors
        assert await answered(client)
        assert states(client)[-1] == "ready"
        assert (await stats(client))["errors"] == 4


async def test_out_of_memory_on_cpu_is_reported_once(tiny_model_dir: Path) -> None:
    async with server({"model": str(tiny_model_dir), "cacheSize": 0},
                      {"fail_forwards": [1, 2], "fail_kind": "oom"}) as client:
        open_doc(client)
        assert await complete(client) == [] and await complete(client) == []
        errors = popups(client, types.MessageType.Error)
        assert len(errors) == 1 and "out of memory" in errors[0], errors
        assert await answered(client)


async def test_out_of_gpu_memory_moves_to_the_cpu(tiny_model_dir: Path) -> None:
    """Simulated GPU (see fault_server.py): the server's OOM path, not CUDA's."""
    # steps 1: one forward per request, so forward 2 is the second request
    async with server({"model": str(tiny_model_dir), "device": "cuda", "cacheSize": 0, "steps": 1},
                      {"fail_forwards": [2], "fail_kind": "oom", "simulated_gpu": True}) as client:
        open_doc(client)
        assert await answered(client)  # forward 1: fine, on the "GPU"
        assert await complete(client) == []  # forward 2: out of memory
        await until(lambda: states(client).count("loading") == 2 and states(client)[-1] == "ready")
        warnings = popups(client, types.MessageType.Warning)
        assert len(warnings) == 1 and "CPU" in warnings[0], warnings
        assert await answered(client)
        assert not popups(client, types.MessageType.Error)


async def test_a_full_gpu_moves_the_server_to_the_cpu(tiny_model_dir: Path, device: str) -> None:
    """A real GPU (``--device cuda``): the GPU is allocated full just before the second
    request's forward, which meets CUDA's own out-of-memory; the server moves to the CPU,
    says so once, and answers from there."""
    if device != "cuda":
        pytest.skip("needs a real GPU: pytest --device cuda")
    async with server({"model": str(tiny_model_dir), "device": "cuda", "cacheSize": 0, "steps": 1},
                      {"fill_gpu_at_forward": 2}) as client:
        open_doc(client)
        assert await answered(client)  # forward 1: on the GPU
        assert str(client.statuses[-1]["device"]).startswith("cuda")
        assert await complete(client) == []  # forward 2: the GPU is full
        await until(lambda: states(client).count("loading") == 2 and states(client)[-1] == "ready")
        warnings = popups(client, types.MessageType.Warning)
        assert len(warnings) == 1 and "out of memory" in warnings[0] and "CPU" in warnings[0], warnings
        assert await answered(client)
        assert client.statuses[-1]["device"] == "cpu"
        assert not popups(client, types.MessageType.Error)


async def test_slow_model_load_keeps_the_server_responsive(tiny_model_dir: Path) -> None:
    async with server({"model": str(tiny_model_dir)}, {"load_delay_s": 4}) as client:
        open_doc(client)
        t0 = time.monotonic()
        waiting = asyncio.ensure_future(client.protocol.send_request_async(
            types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(*CURSOR), msg_id="during-load"))
        await asyncio.sleep(0.3)
        assert not waiting.done() and states(client)[-1] == "loading"
        # other requests are answered meanwhile, and a waiting one can be cancelled
        assert (await stats(client))["requests"] >= 1
        client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="during-load"))
        with pytest.raises(JsonRpcException) as err:
            await waiting
        assert err.value.code == -32800  # RequestCancelled
        assert time.monotonic() - t0 < 2.0
        # a request made during the load completes once the model is there
        assert await answered(client)
        assert time.monotonic() - t0 >= 3.5
        assert not popups(client, types.MessageType.Error)


async def test_oversized_document_told_once_and_fill_command_refused(tiny_model_dir: Path) -> None:
    async with server({"model": str(tiny_model_dir), "maxDocumentBytes": 4096}) as client:
        big = "x = 1\n" * 1000 + "def f():\n    \n"
        open_doc(client, big)
        line = big.count("\n") - 1
        for _ in range(3):
            result = await client.text_document_inline_completion_async(inline_params(line, 4))
            assert list(result.items) == []
        warnings = popups(client, types.MessageType.Warning)
        assert len(warnings) == 1 and "maxDocumentBytes" in warnings[0], warnings
        with pytest.raises(JsonRpcException) as err:
            await client.workspace_execute_command_async(types.ExecuteCommandParams(
                command="diffill.fillInTheMiddle",
                arguments=[{"uri": "file:///tmp/diffill-test/example.py", "position": {"line": line, "character": 4}}]))
        assert err.value.code == -32803 and "maxDocumentBytes" in err.value.message
        configure(client, {"maxDocumentBytes": 1 << 20})
        before = (await stats(client))["completed"]
        await client.text_document_inline_completion_async(inline_params(line, 4))
        # the random test model may write nothing showable: that the engine ran is the point
        assert (await stats(client))["completed"] == before + 1


async def test_request_flood_is_rate_limited_with_server_cancelled(tiny_model_dir: Path) -> None:
    async with server({"model": str(tiny_model_dir), "maxRequestsPerSecond": 5}) as client:
        open_doc(client)
        await complete(client)  # load the model first
        results = await asyncio.gather(
            *(client.text_document_inline_completion_async(inline_params(*CURSOR)) for _ in range(20)),
            return_exceptions=True)
        refused = [r for r in results if isinstance(r, JsonRpcException)]
        assert refused and all(r.code == -32802 and "maxRequestsPerSecond" in r.message for r in refused)
        assert len(refused) < 20
        assert len(popups(client, types.MessageType.Warning)) == 1
        await asyncio.sleep(1.0)
        assert await answered(client)


async def test_unwritable_log_file_is_a_warning_and_other_settings_still_apply(
        tiny_model_dir: Path, tmp_path: Path) -> None:
    async with server({"model": "/nonexistent/model", "logFile": "/nonexistent/dir/diffill.log"}) as client:
        warnings = [m.message for m in client.log_messages if m.type == types.MessageType.Warning]
        assert any("log file" in w for w in warnings), warnings
        log = tmp_path / "diffill.log"
        configure(client, {"model": str(tiny_model_dir), "logFile": str(log)})
        configure(client, {"logFile": "/nonexistent/dir/again.log"})  # keeps the working one
        open_doc(client)
        assert await answered(client)
        assert log.exists() and log.stat().st_size > 0
