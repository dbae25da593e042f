"""pygls' private API: still there, and used by lsp_server/pygls_internals.py only.

When a pygls upgrade renames or drops one of these, the first test names it;
the fix goes into that one module.
"""
from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

import pytest
from pygls.protocol import JsonRPCProtocol

from lsp_server import pygls_internals

PACKAGE = Path(pygls_internals.__file__).parent
PRIVATE_NAMES = sorted(set(pygls_internals.PRIVATE_METHODS) | set(pygls_internals.PROTOCOL_ATTRIBUTES)
                       | set(pygls_internals.SERVER_ATTRIBUTES) | set(pygls_internals.CLIENT_ATTRIBUTES))


def test_the_private_api_the_server_uses_is_still_in_pygls() -> None:
    gone = pygls_internals.missing()
    assert not gone, (f"pygls {version('pygls')} no longer has {', '.join(gone)}, "
                      f"which lsp_server/pygls_internals.py uses: adapt that module")


def test_a_missing_private_method_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(JsonRPCProtocol, "_send_data")
    assert pygls_internals.missing() == ["JsonRPCProtocol._send_data"]


def test_a_changed_signature_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    def _handle_request(self, message_id, method_name, params):
        return None

    monkeypatch.setattr(JsonRPCProtocol, "_handle_request", _handle_request)
    gone = pygls_internals.missing()
    assert len(gone) == 1 and gone[0].startswith("JsonRPCProtocol._handle_request(msg_id, method_name, params)")


def test_no_other_module_touches_pygls_private_api() -> None:
    pattern = re.compile(r"\.(" + "|".join(re.escape(n) for n in PRIVATE_NAMES) + r")\b")
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "pygls_internals.py":
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{n}: {line.strip()}")
    assert not offenders, "pygls private API outside lsp_server/pygls_internals.py:\n" + "\n".join(offenders)


def test_message_kinds_are_answered_once_per_class_and_the_same_as_pygls() -> None:
    from lsprotocol import types
    from pygls.protocol import json_rpc

    from lsp_server.pygls_internals import MESSAGE_KIND_PROTOCOLS, _OncePerClass, answer_message_kinds_once

    answer_message_kinds_once()
    answer_message_kinds_once()  # twice: still one layer
    request = types.InlineCompletionRequest(id=1, params=types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri="file:///a.py"), position=types.Position(0, 0),
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked)))
    note = types.InitializedNotification(params=types.InitializedParams())
    response = json_rpc.JsonRPCResponseMessage(id=1, result=None, jsonrpc="2.0")
    for name in MESSAGE_KIND_PROTOCOLS:
        check = getattr(json_rpc, name)
        assert isinstance(check, _OncePerClass) and not isinstance(check.protocol, _OncePerClass)
        for message in (request, note, response, request):
            assert isinstance(message, check) == isinstance(message, check.protocol)
        assert len(check.answers) == 3
    assert isinstance(request, json_rpc.RPCRequest) and not isinstance(note, json_rpc.RPCRequest)
    assert isinstance(note, json_rpc.RPCNotification) and isinstance(response, json_rpc.RPCResponse)
