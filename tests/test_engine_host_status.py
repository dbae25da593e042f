"""Issue 26, defect 7: what diffill/status says while a backend loads and once it is ready,
for the local model and for a remote server (after switching backends at run time too)."""
from __future__ import annotations

from dataclasses import replace

from lsprotocol import types

from engine.backends.remote import load_remote
from engine.engine import Engine
from lsp_server.config import Settings
from lsp_server.engine_host import EngineHost, load_label
from lsp_server.notices import Notices


class _Server:
    def __init__(self) -> None:
        self.statuses: list[tuple[str, str]] = []
        self.shown: list[str] = []
        self.notices = Notices(lambda message, kind: self.shown.append(message))

    def send_status(self, state: str, message: str, **extra: str) -> None:
        self.statuses.append((state, message))

    def show_message(self, message: str, kind: types.MessageType = types.MessageType.Info) -> None:
        self.shown.append(message)


def test_load_label_names_the_server_not_a_bundled_or_stale_model() -> None:
    assert load_label(Settings()) == "bundled model"
    assert load_label(Settings(model="dream-coder-7b")) == "dream-coder-7b"
    remote = Settings(backend="llamacpp", url="http://gpu-box:8080")
    assert load_label(remote) == "llamacpp server at http://gpu-box:8080"
    # switched from openai (model "anything") to llamacpp: llama-server's /infill sends no model name
    assert load_label(replace(remote, model="anything")) == "llamacpp server at http://gpu-box:8080"
    openai = Settings(backend="openai", url="http://h", model="fim")
    assert load_label(openai) == "openai server at http://h (model fim)"


def test_ready_names_the_server_and_tells_the_backends_notes_once() -> None:
    server = _Server()
    host = EngineHost(server, worker=None)  # type: ignore[arg-type]  # send_ready needs no worker
    backend = load_remote("openai", "http://127.0.0.1:9", "tiny")
    host.engine = Engine(backend)
    host.send_ready()
    assert server.statuses == [("ready", "openai server at http://127.0.0.1:9")]
    backend.notes.append("the server ignores the suffix")
    host.send_ready()
    host.send_ready()
    assert server.shown == ["diffill: the server ignores the suffix"]
