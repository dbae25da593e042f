"""A byte-level JSON-RPC-over-stdio client for fuzzing the language server.

pytest-lsp's client only sends well-formed, typed messages; the fuzzer needs to
send anything (bad JSON, odd ids, wrong Content-Length, lone surrogates), so
this client writes raw frames and reads the server's output on a thread.

It also answers the server's own requests (``window/workDoneProgress/create``,
``workspace/applyEdit``, ``workspace/configuration``, ...) at once, so the
server is never left waiting on us.  An ``applyEdit`` is answered as an
editor would: its edits are sent back as an incremental ``didChange`` first.
"""
from __future__ import annotations

import itertools
import json
import os
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

#: results we give to the server's requests (anything else: null)
SERVER_REQUEST_RESULTS: dict[str, Callable[[Any], Any]] = {
    "workspace/applyEdit": lambda params: {"applied": True},
    "workspace/configuration": lambda params: [None] * len((params or {}).get("items") or []),
}


def id_key(msg_id: Any) -> str:
    """A hashable, type-preserving key for any JSON id (1, "1", 1.5, [1], null)."""
    return json.dumps(msg_id, sort_keys=True)


def encode(message: Any) -> bytes:
    """JSON body as the server must accept it: ASCII, lone surrogates as \\uXXXX escapes."""
    return json.dumps(message, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def frame(body: bytes, length: int | None = None, headers: tuple[str, ...] = ()) -> bytes:
    """One LSP frame; ``length`` overrides the (correct) Content-Length."""
    head = f"Content-Length: {len(body) if length is None else length}\r\n"
    head += "".join(f"{h}\r\n" for h in headers)
    return head.encode("ascii") + b"\r\n" + body


@dataclass
class Inbox:
    """Everything the server sent, guarded by one condition variable."""

    responses: dict[str, list[dict]] = field(default_factory=dict)
    notifications: list[dict] = field(default_factory=list)
    server_requests: list[dict] = field(default_factory=list)
    garbage: list[bytes] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)


class RawLspClient:
    """Drives one server process over stdio at the byte level."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None,
                 cwd: str | Path | None = None, stderr_path: str | Path | None = None,
                 read_output: bool = True) -> None:
        """``read_output=False``: no reader thread; the test reads ``proc.stdout``
        itself (``read_message``), e.g. to close it under the server."""
        # kept open for the server's whole life and closed in close()
        self._stderr: IO[bytes] | int = open(stderr_path, "wb") if stderr_path else subprocess.DEVNULL  # noqa: SIM115
        self.stderr_path = Path(stderr_path) if stderr_path else None
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._stderr, env=env, cwd=cwd, bufsize=0)
        self.inbox = Inbox()
        #: per method, how to answer the server's requests instead of SERVER_REQUEST_RESULTS:
        #: the handler gets the request and returns the response to send, or None to hold
        #: it (the test answers later with ``answer``, or never)
        self.handlers: dict[str, Callable[[dict], dict | None]] = {}
        self._ids = itertools.count(1)
        self._write_lock = threading.Lock()
        self._reader = threading.Thread(target=self._read_loop, name="raw-lsp-reader", daemon=True)
        if read_output:
            self._reader.start()

    # -- sending -------------------------------------------------------------
    def send_bytes(self, data: bytes) -> None:
        with self._write_lock:
            assert self.proc.stdin is not None
            self.proc.stdin.write(data)
            self.proc.stdin.flush()

    def send(self, message: Any) -> None:
        self.send_bytes(frame(encode(message)))

    def next_id(self) -> int:
        return next(self._ids)

    def request(self, method: str, params: Any = None, msg_id: Any = None) -> Any:
        """Send a request; returns its id (a fresh int unless given)."""
        msg_id = self.next_id() if msg_id is None else msg_id
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        return msg_id

    def notify(self, method: str, params: Any = None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)

    def call(self, method: str, params: Any = None, timeout: float = 30.0) -> dict:
        """Request and wait for its response message (result or error)."""
        return self.wait_response(self.request(method, params), timeout)

    # -- receiving -----------------------------------------------------------
    def wait_for(self, predicate: Callable[[Inbox], bool], timeout: float) -> bool:
        with self.inbox.cond:
            return self.inbox.cond.wait_for(lambda: predicate(self.inbox) or not self.alive(), timeout) \
                and predicate(self.inbox)

    def wait_response(self, msg_id: Any, timeout: float = 30.0) -> dict:
        key = id_key(msg_id)
        if not self.wait_for(lambda box: key in box.responses, timeout):
            raise TimeoutError(f"no response to id {msg_id!r} within {timeout} s (alive: {self.alive()})")
        return self.inbox.responses[key][0]

    def responses_to(self, msg_id: Any) -> list[dict]:
        with self.inbox.cond:
            return list(self.inbox.responses.get(id_key(msg_id), []))

    def read_message(self) -> dict | None:
        """The server's next message, read on this thread (only with ``read_output=False``)."""
        assert self.proc.stdout is not None and not self._reader.is_alive()
        body = _read_frame(self.proc.stdout)
        return None if body is None else json.loads(body)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stderr_tail(self, chars: int = 4000) -> str:
        if self.stderr_path is None or not self.stderr_path.exists():
            return ""
        return self.stderr_path.read_text(errors="replace")[-chars:]

    def _read_loop(self) -> None:
        stdout = self.proc.stdout
        assert stdout is not None
        try:
            while True:
                body = _read_frame(stdout)
                if body is None:
                    break
                self._dispatch(body)
        finally:
            with self.inbox.cond:
                self.inbox.cond.notify_all()

    def _dispatch(self, body: bytes) -> None:
        try:
            message = json.loads(body, parse_constant=_not_json)
        except ValueError:
            message = None  # the server wrote something a strict JSON parser refuses
        box = self.inbox
        if not isinstance(message, dict):
            with box.cond:
                box.garbage.append(body)
                box.cond.notify_all()
            return
        if "method" in message and "id" in message:  # the server asks us something
            with box.cond:
                box.server_requests.append(message)
            self._answer(message)
        with box.cond:
            if "method" not in message:
                box.responses.setdefault(id_key(message.get("id")), []).append(message)
            elif "id" not in message:
                box.notifications.append(message)
            box.cond.notify_all()

    def _answer(self, message: dict) -> None:
        handler = self.handlers.get(message["method"])
        if handler is not None:
            response = handler(message)
            if response is not None:
                self.answer(message, response)
            return
        if message["method"] == "workspace/applyEdit":
            self.echo_edit(message)
        make = SERVER_REQUEST_RESULTS.get(message["method"], lambda params: None)
        self.answer(message, {"result": make(message.get("params"))})

    def echo_edit(self, request: dict) -> None:
        """Send a versioned applyEdit's edits back as ``didChange`` (what an editor's
        buffer change produces) before the answer, as editors do."""
        edit = (request.get("params") or {}).get("edit") or {}
        for change in edit.get("documentChanges") or []:
            document = change.get("textDocument") or {}
            if not isinstance(document.get("version"), int):
                continue
            try:
                self.notify("textDocument/didChange", {
                    "textDocument": {"uri": document.get("uri"), "version": document["version"] + 1},
                    "contentChanges": [{"range": e["range"], "text": e["newText"]}
                                       for e in reversed(change.get("edits") or [])]})
            except (BrokenPipeError, OSError):
                return

    def answer(self, request: dict, response: dict) -> None:
        """Answer one of the server's requests with ``{"result": ...}`` or ``{"error": ...}``."""
        try:
            self.send({"jsonrpc": "2.0", "id": request["id"], **response})
        except (BrokenPipeError, OSError):
            pass  # the server is gone; the test notices through alive()

    def notifications_of(self, method: str) -> list[dict]:
        """The params of every notification ``method`` received so far."""
        with self.inbox.cond:
            return [n.get("params") for n in self.inbox.notifications if n.get("method") == method]

    # -- teardown ------------------------------------------------------------
    def close(self, timeout: float = 10.0) -> int | None:
        """shutdown + exit, then make sure the process is gone; returns its exit code."""
        if self.alive():
            try:
                msg_id = self.request("shutdown")
                self.wait_response(msg_id, timeout)
                self.notify("exit")
                self.proc.wait(timeout)
            except (OSError, TimeoutError, subprocess.TimeoutExpired):
                pass
        if self.alive():
            self.proc.kill()
            self.proc.wait(timeout)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
        if not isinstance(self._stderr, int):
            self._stderr.close()
        if self._reader.is_alive():
            self._reader.join(timeout)
        return self.proc.returncode


def _not_json(name: str) -> Any:
    """Python's json reads NaN/Infinity; JSON (and editors' parsers) do not."""
    raise ValueError(f"{name} is not JSON")


def _read_frame(stream: IO[bytes]) -> bytes | None:
    """One body from ``stream`` (None at EOF)."""
    length = None
    while True:
        line = stream.readline()
        if not line:
            return None
        if line in (b"\r\n", b"\n"):
            if length is not None:
                break
            continue
        name, _, value = line.decode("ascii", "replace").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    chunks = []
    remaining = length
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def server_env() -> dict[str, str]:
    """One CPU thread for everything: the fuzzer shares the machine with other tests."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
