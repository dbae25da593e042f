"""Every use of pygls' private API, in one place.

pygls (pinned to one minor version in pyproject.toml) offers no public way to
do what the server needs here:

- run code as each request arrives, before its handler (the document snapshot,
  see ``DocumentStore``): ``JsonRPCProtocol._handle_request``;
- drop the client's late answer to a server request whose future was cancelled
  (a cancelled fill awaiting ``workspace/applyEdit``): pygls 2.1.1 sets the
  result on the cancelled future, which raises ``InvalidStateError`` and pops
  up "Error in server" (pygls#621).  Fixed on pygls' main branch (pull request
  #628) but in no release yet: drop ``_handle_response`` below once the pinned
  pygls has the fix (tests/test_lsp_server.py's
  ``test_fill_cancelled_while_the_editor_applies_its_edit_is_quiet`` guards it);
- send an error response whose id is exactly what the client sent, odd but valid
  ids included: ``_send_data``;
- tell the client's response to one of our requests from a stray one:
  ``_result_types``; whether ``shutdown`` was received: ``_shutdown``;
- refuse requests and drop notifications the LSP lifecycle does not allow yet
  (before ``initialize``, a second ``initialize``) before pygls dispatches
  them: ``_handle_request``, ``_handle_notification``, ``_send_response``;
- keep the Python traceback of a server fault out of the error response's
  ``data`` (pygls puts it there; the log keeps it): ``_send_response``;
- keep pygls' bookkeeping bounded (issue 20): it keeps the entry in
  ``_result_types`` of a request answered with an error, the future of a
  request never answered, and one future per notification handled by one of
  its generator handlers (``$/setTrace``, ``initialized``, ...), forever;
  ``bookkeeping()`` reports both sizes for ``diffill/stats``;
- the server a protocol belongs to: ``JsonRPCProtocol._server``;
- our own stdio loop stops when ``server.shutdown()`` sets ``_stop_event``;
- the benchmarks read /proc of the server process a client started:
  ``JsonRPCClient._server``;
- ``JsonRPCProtocol.handle_message`` tells requests, notifications and
  responses apart with ``isinstance`` against runtime-checkable Protocols
  (``json_rpc.RPCRequest`` ...), which Python 3.11 answers by walking each
  Protocol's attributes: tens of microseconds per message, a measurable share
  of a fast remote server's answer.  ``answer_message_kinds_once`` swaps them
  for checks answered once per message class (the classes are attrs classes
  whose fields every instance has, so the answer is the class's).

``missing()`` checks that all of these still exist with the expected
signatures; tests/test_pygls_internals.py fails with their names when a pygls
upgrade changes them, and checks that no other module touches them.
"""
from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from typing import Any

import attrs
from pygls.client import JsonRPCClient
from pygls.exceptions import JsonRpcException
from pygls.protocol import JsonRPCProtocol, LanguageServerProtocol
from pygls.server import JsonRPCServer

from lsp_server.logging_setup import debug_enabled

#: private methods we override or call, with the parameters we pass them
PRIVATE_METHODS: dict[str, tuple[str, ...]] = {
    "_handle_request": ("msg_id", "method_name", "params"),
    "_handle_notification": ("method_name", "params"),
    "_handle_response": ("msg_id", "result", "error"),
    "_send_data": ("data",),
    "_send_response": ("msg_id", "result", "error"),
}
#: private attributes, per object they are read from
PROTOCOL_ATTRIBUTES = ("_server", "_shutdown", "_request_futures", "_result_types")
SERVER_ATTRIBUTES = ("_stop_event",)
#: the Protocols pygls' handle_message tests messages against (module globals of pygls.protocol.json_rpc)
MESSAGE_KIND_PROTOCOLS = ("RPCRequest", "RPCNotification", "RPCResponse")
CLIENT_ATTRIBUTES = ("_server",)


class HookedProtocol(LanguageServerProtocol):
    """pygls' LSP protocol with its private hooks given public names."""

    @property
    def owner(self) -> Any:
        """The server this protocol belongs to."""
        return self._server

    def on_request(self) -> None:
        """Called as each request arrives, before its handler runs (override)."""

    def refuse_request(self, method_name: str) -> JsonRpcException | None:
        """The error to answer a request with instead of running it (override)."""
        return None

    def accept_notification(self, method_name: str) -> bool:
        """Whether to handle a notification now (override; False: dropped)."""
        return True

    def _handle_request(self, msg_id: Any, method_name: str, params: Any) -> None:
        refusal = self.refuse_request(method_name)
        if refusal is not None:
            self._send_response(msg_id, None, refusal.to_response_error())
            return
        self.on_request()
        super()._handle_request(msg_id, method_name, params)

    def _handle_notification(self, method_name: str, params: Any) -> None:
        if not self.accept_notification(method_name):
            return
        before = set(self._request_futures)
        super()._handle_notification(method_name, params)
        # pygls files the future of a generator handler run for a notification under a
        # fresh id and never removes it: remove it when it is done
        for key in self._request_futures.keys() - before:
            self._request_futures[key].add_done_callback(functools.partial(self._drop_future, key))

    def _drop_future(self, key: Any, future: Any) -> None:
        if self._request_futures.get(key) is future:
            del self._request_futures[key]

    def _send_response(self, msg_id: Any, result: Any | None = None, error: Any | None = None) -> None:
        """pygls puts the Python traceback of a server fault in the error's ``data``:
        the client gets the one-line message, the log the traceback
        (``DIFFILL_DEBUG=1`` sends it too)."""
        data = getattr(error, "data", None)
        if error is not None and isinstance(data, dict) and "traceback" in data and not debug_enabled():
            rest = {k: v for k, v in data.items() if k != "traceback"}
            error = attrs.evolve(error, data=rest or None)
        super()._send_response(msg_id, result, error)

    def _handle_response(self, msg_id: Any, result: Any | None = None, error: Any | None = None) -> None:
        """Drop the answer to a request whose future we cancelled (pygls#621); forget
        the result type of one answered with an error (pygls keeps it)."""
        self._result_types.pop(msg_id, None)
        future = self._request_futures.get(msg_id)
        if future is not None and future.cancelled():
            self._request_futures.pop(msg_id, None)
            return
        super()._handle_response(msg_id, result, error)


def forget_request(protocol: JsonRPCProtocol, msg_id: Any) -> None:
    """Stop awaiting the answer to one of our requests (a later answer is ignored as stray)."""
    protocol._request_futures.pop(msg_id, None)
    protocol._result_types.pop(msg_id, None)


def bookkeeping(protocol: JsonRPCProtocol) -> dict[str, int]:
    """Sizes of pygls' per-request tables (futures of requests in flight both ways,
    result types of our requests awaiting an answer): bounded when nothing is in flight."""
    return {"futures": len(protocol._request_futures), "resultTypes": len(protocol._result_types)}


def send_raw(protocol: JsonRPCProtocol, message: dict[str, Any]) -> None:
    """Send ``message`` as is: a plain dict keeps odd-but-valid ids as the client sent them."""
    protocol._send_data(message)


def awaits_response(protocol: JsonRPCProtocol, msg_id: Any) -> bool:
    """Whether ``msg_id`` is one of this side's own requests still waiting for an answer."""
    return msg_id in protocol._result_types


def is_shutting_down(protocol: JsonRPCProtocol) -> bool:
    """Whether the client sent ``shutdown``."""
    return bool(protocol._shutdown)


def use_stop_event(server: JsonRPCServer, stop: threading.Event) -> None:
    """Have ``server.shutdown()`` set ``stop`` (our own stdio loop watches it)."""
    server._stop_event = stop


def client_process(client: JsonRPCClient) -> asyncio.subprocess.Process:
    """The server process a client started with ``start_io``."""
    process = client._server
    if process is None:
        raise RuntimeError("the client has not started a server process")
    return process


class _OncePerClass:
    """``isinstance(message, <pygls message Protocol>)``, answered once per message class."""

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol
        self.answers: dict[type, bool] = {}

    def __instancecheck__(self, instance: Any) -> bool:
        kind = type(instance)
        answer = self.answers.get(kind)
        if answer is None:
            answer = self.answers[kind] = isinstance(instance, self.protocol)
        return answer


def answer_message_kinds_once() -> None:
    """Install the per-class answers in pygls' JSON-RPC module (idempotent)."""
    from pygls.protocol import json_rpc

    for name in MESSAGE_KIND_PROTOCOLS:
        current = getattr(json_rpc, name)
        if not isinstance(current, _OncePerClass):
            setattr(json_rpc, name, _OncePerClass(current))


def missing() -> list[str]:
    """What this module uses that the installed pygls no longer has (empty when all is there)."""
    from pygls.lsp.client import LanguageClient
    from pygls.lsp.server import LanguageServer
    from pygls.protocol import json_rpc

    gone = [f"pygls.protocol.json_rpc.{name}" for name in MESSAGE_KIND_PROTOCOLS if not hasattr(json_rpc, name)]
    for name, params in PRIVATE_METHODS.items():
        method = getattr(JsonRPCProtocol, name, None)
        if not callable(method):
            gone.append(f"JsonRPCProtocol.{name}")
            continue
        found = tuple(inspect.signature(method).parameters)[1:]
        if found[: len(params)] != params:
            gone.append(f"JsonRPCProtocol.{name}({', '.join(params)}) (now ({', '.join(found)}))")
    server = LanguageServer("diffill-probe", "0")
    gone += [f"JsonRPCProtocol.{a}" for a in PROTOCOL_ATTRIBUTES if not hasattr(server.protocol, a)]
    gone += [f"JsonRPCServer.{a}" for a in SERVER_ATTRIBUTES if not hasattr(server, a)]
    client = LanguageClient("diffill-probe", "0")
    gone += [f"JsonRPCClient.{a}" for a in CLIENT_ATTRIBUTES if not hasattr(client, a)]
    return gone
