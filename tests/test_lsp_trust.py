"""trustRemoteCode entries a repository could have written are refused
(lsp_server/trust.py): relative paths, hub ids shadowed by a directory, and
absolute paths inside a workspace folder.  The last test runs the real server
over stdio with a model whose own code writes a marker file."""
from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest
from editor_sources import remote_code_model
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient
from test_lsp_server import SERVER_ENV, attach_recorders, capabilities

from engine.loading import _HUB_ID as ENGINE_HUB_ID
from lsp_server.config import parse_settings
from lsp_server.trust import HUB_ID, refusal, screen_trusted_models

#: starts server processes: left out of the quick loop (pytest -m 'not slow and not editor')
pytestmark = pytest.mark.slow


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    """A workspace folder with a model in it, a model outside it, and a working directory."""
    ws, outside, cwd = tmp_path / "ws", tmp_path / "models" / "good", tmp_path / "cwd"
    for d in (ws / "evil-model", outside, cwd):
        d.mkdir(parents=True)
    return {"ws": ws, "outside": outside, "cwd": cwd, "tmp": tmp_path}


def test_absolute_path_outside_the_workspace_is_trusted(layout):
    assert refusal(str(layout["outside"]), [str(layout["ws"])], str(layout["cwd"])) is None


def test_absolute_path_inside_a_workspace_folder_is_refused(layout):
    ws = layout["ws"]
    for entry in (str(ws / "evil-model"), str(ws), f"{layout['outside']}/../../ws/evil-model"):
        reason = refusal(entry, [str(layout["outside"].parent), str(ws)], str(layout["cwd"]))
        assert reason is not None and "inside the workspace folder" in reason and repr(entry) in reason


def test_symlink_into_the_workspace_is_refused(layout):
    link = layout["tmp"] / "innocent-looking"
    link.symlink_to(layout["ws"] / "evil-model")
    assert "inside the workspace folder" in refusal(str(link), [str(layout["ws"])], str(layout["cwd"]))


def test_home_relative_path_counts_as_absolute(layout, monkeypatch):
    monkeypatch.setenv("HOME", str(layout["tmp"]))
    assert refusal("~/models/good", [str(layout["ws"])], str(layout["cwd"])) is None
    assert "inside the workspace folder" in refusal("~/ws/evil-model", [str(layout["ws"])], str(layout["cwd"]))


@pytest.mark.parametrize("entry", ["evil-model", "./evil-model", "../ws/evil-model", "a/b/c", "org/..", ".", "x\\y"])
def test_relative_paths_are_refused(layout, entry):
    reason = refusal(entry, [str(layout["ws"])], str(layout["cwd"]))
    assert reason is not None and "relative path" in reason


def test_hub_id_is_trusted_unless_a_directory_of_that_name_shadows_it(layout):
    cwd = layout["cwd"]
    assert refusal("GSAI-ML/LLaDA-8B-Instruct", [], str(cwd)) is None
    (cwd / "GSAI-ML" / "LLaDA-8B-Instruct").mkdir(parents=True)  # the engine would load this instead
    reason = refusal("GSAI-ML/LLaDA-8B-Instruct", [], str(cwd))
    assert reason is not None and "relative to the server's working directory" in reason


def test_bundled_names_are_not_paths(layout):
    (layout["cwd"] / "bundled").mkdir()
    for name in ("bundled", "diffill-tiny"):
        assert refusal(name, [str(layout["ws"])], str(layout["cwd"])) is None


@pytest.mark.parametrize("text", ["org/name", "o/n.v2", "a-b/c_d", "org/-x", "org/.x", "-o/n", "o/n/x", "o",
                                  "o/", "/o/n", "~/o", "o/n ", "ö/n"])
def test_hub_ids_accepted_here_are_hub_ids_to_the_engine(text):
    if HUB_ID.fullmatch(text):
        assert ENGINE_HUB_ID.fullmatch(text) and not text.startswith((".", "/", "~"))


def test_screen_keeps_trusted_entries_and_explains_the_rest(layout):
    evil = str(layout["ws"] / "evil-model")
    settings, _ = parse_settings({"model": evil, "trustRemoteCode": [str(layout["outside"]), evil, "./x"]})
    assert settings.trusts_model_code()
    screened, messages = screen_trusted_models(settings, [str(layout["ws"])], str(layout["cwd"]))
    assert screened.trust_remote_code == (str(layout["outside"]),)
    assert not screened.trusts_model_code()
    assert len(messages) == 2 and repr(evil) in messages[0] and "'./x'" in messages[1]
    same, messages = screen_trusted_models(screened, [str(layout["ws"])], str(layout["cwd"]))
    assert same is screened and messages == []


# -- the real server over stdio -------------------------------------------------

async def run_server(tmp: Path, folder: Path, model: Path, trusted: list[str]) -> LanguageClient:
    """Initialize a real server with ``folder`` as workspace and ``model`` trusted; wait for the load."""
    env = {**SERVER_ENV, "HF_HOME": str(tmp / "hf")}
    config = ClientServerConfig(server_command=[sys.executable, "-m", "lsp_server"], server_env=env)
    client = await config.start()
    attach_recorders(client)
    await client.initialize_session(types.InitializeParams(
        capabilities=capabilities(), root_uri=folder.as_uri(),
        workspace_folders=[types.WorkspaceFolder(uri=folder.as_uri(), name="ws")],
        initialization_options={"device": "cpu", "model": str(model), "trustRemoteCode": trusted}))
    deadline = time.monotonic() + 60
    while not any(s["state"] in ("ready", "error") for s in client.statuses):
        assert time.monotonic() < deadline, "the model load never finished"
        await asyncio.sleep(0.05)
    return client


async def stop(client: LanguageClient) -> None:
    try:
        await asyncio.wait_for(client.shutdown_session(), 30)
    finally:
        await client.stop()


async def test_server_refuses_model_code_from_inside_the_workspace(tmp_path: Path) -> None:
    marker = tmp_path / "remote-code-ran"
    ws = tmp_path / "ws"
    model = remote_code_model(ws / "evil-model", marker)
    client = await run_server(tmp_path, ws, model, [str(model)])
    try:
        warnings = [m.message for m in client.messages if m.type == types.MessageType.Warning]
        assert any("refused" in w and str(model) in w for w in warnings), client.messages
        assert [s["state"] for s in client.statuses][-1] == "error"  # it needs its code, which was refused
        assert not marker.exists()
    finally:
        await stop(client)
    # control: the same model outside the workspace, trusted by its absolute path, does run its code
    outside = remote_code_model(tmp_path / "elsewhere" / "evil-model", marker)
    client = await run_server(tmp_path, ws, outside, [str(outside)])
    try:
        assert marker.exists(), client.messages
        assert not any("refused" in m.message for m in client.messages)
    finally:
        await stop(client)


async def test_server_checks_trust_again_when_workspace_folders_change(tmp_path: Path) -> None:
    marker = tmp_path / "remote-code-ran"
    first, later = tmp_path / "first", tmp_path / "later"
    first.mkdir()
    model = remote_code_model(later / "evil-model", marker)
    client = await run_server(tmp_path, first, model, [str(model)])
    try:
        assert marker.exists()  # outside the only folder: trusted
        marker.unlink()
        client.workspace_did_change_workspace_folders(types.DidChangeWorkspaceFoldersParams(
            event=types.WorkspaceFoldersChangeEvent(
                added=[types.WorkspaceFolder(uri=later.as_uri(), name="later")], removed=[])))
        deadline = time.monotonic() + 30
        while not any("refused" in m.message for m in client.messages):
            assert time.monotonic() < deadline, client.messages
            await asyncio.sleep(0.05)
    finally:
        await stop(client)
    assert not marker.exists()
