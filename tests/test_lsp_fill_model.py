"""A second model for the fill command (issue 31): over stdio, inline completions are
answered by ``model`` and the fill command by ``fillModel``, each loaded on first use,
``diffill/status`` and ``diffill/stats`` naming both; and a second model that does not
fit next to the first is refused with one line naming both.

Two distinguishable test models (different seeds and vocabularies); which one answered
is read from ``diffill/stats`` (the model of each request's timing), never from the text.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import LanguageClient
from remote_standin import StandinServer
from test_lsp_server import CONFIG, CURSOR, base_options, inline_params, open_doc, start, stats

from engine import DeviceError
from engine.machine import Machine
from lsp_server.config import Settings
from lsp_server.engine_host import load_with_fallbacks
from lsp_server.features.common import plain

#: starts processes and loads models: left out of the quick loop
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fill_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second tiny model, unlike the session's (another seed, another vocabulary)."""
    from conftest import _sample_texts

    from engine.training.model_factory import make_random_model

    return make_random_model(tmp_path_factory.mktemp("fill-model"), _sample_texts(), size="test",
                             vocab_size=384, context=256, seed=1)


@pytest_lsp.fixture(config=CONFIG)
async def client(lsp_client: LanguageClient, tiny_model_dir, fill_model_dir):
    options = {**base_options(tiny_model_dir), "fillModel": str(fill_model_dir)}
    lsp_client.init_result = await start(lsp_client, options)  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


@pytest.fixture(scope="module")
def standin():
    with StandinServer("llamacpp") as srv:
        yield srv


@pytest_lsp.fixture(config=CONFIG)
async def team_client(lsp_client: LanguageClient, tiny_model_dir, standin: StandinServer):
    """Typing on the local bundled-like model, the fill command on a team's server."""
    options = {**base_options(tiny_model_dir), "fillBackend": "llamacpp", "fillUrl": standin.url}
    lsp_client.init_result = await start(lsp_client, options)  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


async def fill(client: LanguageClient, line: int = CURSOR[0], character: int = CURSOR[1]) -> dict:
    return plain(await client.workspace_execute_command_async(types.ExecuteCommandParams(
        command="diffill.fillInTheMiddle",
        arguments=[{"uri": "file:///tmp/diffill-test/example.py",
                    "position": {"line": line, "character": character}}])))


def last_ready(client: LanguageClient) -> dict:
    return [s for s in client.statuses if s["state"] == "ready"][-1]  # type: ignore[attr-defined]


async def test_inline_completions_use_model_and_the_fill_command_uses_fill_model(
        client: LanguageClient, tiny_model_dir: Path, fill_model_dir: Path):
    typing_path, fill_path = str(tiny_model_dir.resolve()), str(fill_model_dir.resolve())
    open_doc(client)
    await client.text_document_inline_completion_async(inline_params(*CURSOR))
    s = await stats(client)
    assert s["last"]["kind"] == "inline" and s["last"]["model"] == typing_path
    engines = s["engines"]
    assert engines["separateFill"] and engines["typing"]["loaded"] and engines["typing"]["model"] == typing_path
    assert not engines["fill"]["loaded"]  # loaded at the first fill, not before
    ready = last_ready(client)
    assert ready["model"] == typing_path and ready["fillModel"] == str(fill_model_dir)
    assert "loads at the first fill" in ready["message"]

    await fill(client)
    s = await stats(client)
    assert s["last"]["kind"] == "command" and s["last"]["outcome"] == "completed"
    assert s["last"]["model"] == fill_path
    assert s["engines"]["fill"] == {"loaded": True, "model": fill_path, "device": "cpu",
                                    "dtype": s["engines"]["fill"]["dtype"], "backend": "masked-diffusion"}
    ready = last_ready(client)
    assert (ready["model"], ready["fillModel"], ready["fillDevice"]) == (typing_path, fill_path, "cpu")
    assert f"fill: {fill_path} on cpu" in ready["message"]

    # typing still goes to the typing model (another position: not from the cache)
    await client.text_document_inline_completion_async(inline_params(CURSOR[0] - 1, 0))
    s = await stats(client)
    assert s["last"]["kind"] == "inline" and s["last"]["model"] == typing_path

    # fillModel null: the typing model fills too, and the fill model is let go
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        settings={"diffill": {"fillModel": None}}))
    await fill(client, 3, 0)  # a place no request asked about yet: computed, not from the cache
    s = await stats(client)
    assert s["last"]["kind"] == "command" and not s["last"]["cached"] and s["last"]["model"] == typing_path
    assert not s["engines"]["separateFill"] and s["engines"]["fill"]["model"] == typing_path
    assert "fillModel" not in last_ready(client)


async def test_the_fill_command_can_go_to_a_remote_server_while_typing_stays_local(
        team_client: LanguageClient, tiny_model_dir: Path, standin: StandinServer):
    standin.requests.clear()
    open_doc(team_client)
    await team_client.text_document_inline_completion_async(inline_params(*CURSOR))
    s = await stats(team_client)
    assert s["last"]["model"] == str(tiny_model_dir.resolve()) and not standin.requests
    result = await fill(team_client)
    s = await stats(team_client)
    assert s["last"]["kind"] == "command" and s["last"]["model"].startswith("llamacpp:")
    assert standin.requests and result["text"] == "return a + b"  # the stand-in's answer
    assert s["engines"]["fill"]["backend"] == "llamacpp" and s["engines"]["typing"]["backend"] == "masked-diffusion"
    assert "llamacpp:" in last_ready(team_client)["fillModel"]


def test_a_second_model_that_does_not_fit_next_to_the_first_is_refused_naming_both(
        tiny_engine, fill_model_dir: Path, monkeypatch):
    from engine import machine as machine_module

    full = Machine(gpus=(), ram_total_gb=4.0, ram_available_gb=0.2, cpu_fast_bf16=False)
    monkeypatch.setattr(machine_module, "probe", lambda: full)
    settings = Settings(model=str(fill_model_dir), device="cpu")
    with pytest.raises(DeviceError) as info:
        load_with_fallbacks(settings, beside=tiny_engine, use="fill")
    message = str(info.value)
    assert "\n" not in message
    assert f"fillModel {fill_model_dir} needs ~" in message and "0.2 GB is free" in message
    assert f"model {tiny_engine.model_path} loaded" in message
    assert "drop one: set fillModel to null" in message
    roomy = Machine(gpus=(), ram_total_gb=64.0, ram_available_gb=64.0, cpu_fast_bf16=False)
    monkeypatch.setattr(machine_module, "probe", lambda: roomy)
    loaded = load_with_fallbacks(settings, beside=tiny_engine, use="fill")  # room enough: it loads
    assert loaded.engine.model_path == str(fill_model_dir.resolve())
