"""`diffill/context` from the real server over stdio: at a call site it names the
file that defines the called function and carries its definition; ignored files
and secrets never appear; a completion runs with the context attached."""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.uris import from_fs_path
from pytest_lsp import ClientServerConfig, LanguageClient

from lsp_server.context.worker import WORKER_MIN_FILES
from lsp_server.features.common import plain
from tests.test_lsp_server import SERVER_ENV, attach_recorders, base_options, capabilities

pytestmark = pytest.mark.slow

CONFIG = ClientServerConfig(server_command=[sys.executable, "-m", "lsp_server"], server_env=SERVER_ENV)

UTIL = '''"""Money helpers."""


def compute_total(prices, tax_rate):
    """Sum with tax."""
    return round(sum(prices) * (1 + tax_rate), 2)


def unrelated(x):
    return x
'''
GENERATED = "def generated_helper(a):\n    return a * 2\n"
SECRET = "def secret_loader():\n    return 'hunter2'\n"
MAIN = '''from shop.util import compute_total
from shop.generated import generated_helper
from shop.secrets import secret_loader


def checkout(cart):
    value = generated_helper(secret_loader())
    return compute_total(cart.prices, '''


def make_workspace(root: Path) -> Path:
    (root / "shop").mkdir(parents=True)
    (root / "shop" / "util.py").write_text(UTIL)
    (root / "shop" / "generated.py").write_text(GENERATED)
    (root / "shop" / "secrets.py").write_text(SECRET)
    (root / ".gitignore").write_text("shop/generated.py\n")
    (root / "shop" / "main.py").write_text(MAIN)
    (root / "vendored").mkdir()
    for i in range(WORKER_MIN_FILES):  # enough files that the server parses in its index worker process
        (root / "vendored" / f"mod{i}.py").write_text(f"def filler_{i}(x):\n    return x\n")
    return root


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return make_workspace(tmp_path / "ws")


@pytest_lsp.fixture(config=CONFIG)
async def client(lsp_client: LanguageClient, tiny_model_dir, workspace: Path):
    attach_recorders(lsp_client)
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=capabilities(), initialization_options=base_options(tiny_model_dir),
        workspace_folders=[types.WorkspaceFolder(uri=from_fs_path(str(workspace)) or "", name="ws")]))
    lsp_client.workspace_root = workspace  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


async def context_at(client: LanguageClient, uri: str, line: int, character: int) -> dict:
    return plain(await client.protocol.send_request_async(
        "diffill/context", {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}}))


async def open_main(client: LanguageClient) -> tuple[str, int, int]:
    root: Path = client.workspace_root  # type: ignore[attr-defined]
    uri = from_fs_path(str(root / "shop" / "main.py")) or ""
    client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
        uri=uri, language_id="python", version=1, text=MAIN)))
    lines = MAIN.splitlines()
    return uri, len(lines) - 1, len(lines[-1])


async def wait_indexed(client: LanguageClient, uri: str, line: int, character: int) -> dict:
    for _ in range(200):
        result = await context_at(client, uri, line, character)
        if result["index"]["ready"]:
            return result
        await asyncio.sleep(0.05)
    raise AssertionError("the index never became ready")


async def test_call_site_names_the_defining_file_and_carries_the_definition_and_follows_edits(
        client: LanguageClient):
    uri, line, character = await open_main(client)
    result = await wait_indexed(client, uri, line, character)
    root: Path = client.workspace_root  # type: ignore[attr-defined]
    util_uri = from_fs_path(str(root / "shop" / "util.py"))
    by_reason = {p["reason"]: p for p in result["pieces"]}
    piece = by_reason.get("definition of compute_total")
    assert piece is not None, result
    assert piece["uri"] == util_uri and piece["path"] == "shop/util.py"
    assert piece["text"].startswith("def compute_total(prices, tax_rate):")
    assert "return round(sum(prices) * (1 + tax_rate), 2)" in piece["text"]
    assert piece["range"]["start"] == {"line": 3, "character": 0}
    assert 0 < piece["tokens"] <= result["tokensUsed"] <= result["tokenBudget"]
    # the git-ignored file and the file named like secrets are never read
    texts = "".join(p["text"] for p in result["pieces"])
    assert "generated_helper(a)" not in texts and "hunter2" not in texts
    assert all("generated" not in p["uri"] and "secrets" not in p["uri"] for p in result["pieces"])

    # one server for the rest too (each start costs seconds): it follows edits and can be switched off
    # a new definition typed into an open document is found without saving it
    other = from_fs_path(str(root / "shop" / "fresh.py")) or ""
    client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
        uri=other, language_id="python", version=1, text="x = 1\n")))
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=other, version=2),
        content_changes=[types.TextDocumentContentChangePartial(
            range=types.Range(start=types.Position(line=1, character=0), end=types.Position(line=1, character=0)),
            text="def brand_new_thing(a):\n    return a\n")]))
    call = MAIN + "0.2)\n    brand_new_thing("
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
        content_changes=[types.TextDocumentContentChangeWholeDocument(text=call)]))
    last = call.splitlines()
    reasons: list[str] = []
    for _ in range(100):
        result = await context_at(client, uri, len(last) - 1, len(last[-1]))
        reasons = [p["reason"] for p in result["pieces"]]
        if "definition of brand_new_thing" in reasons:
            break
        await asyncio.sleep(0.05)
    assert "definition of brand_new_thing" in reasons
    # a completion runs with the context attached (the tiny model writes gibberish; it must answer)
    items = await client.text_document_inline_completion_async(types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=len(last) - 1, character=len(last[-1])),
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked)))
    assert items is not None
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        settings={"diffill": {"contextEnabled": False}}))
    off = await context_at(client, uri, len(last) - 1, len(last[-1]))
    assert off["enabled"] is False and off["pieces"] == [] and off["tokenBudget"] == 0
