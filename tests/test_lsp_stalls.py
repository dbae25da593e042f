"""Ways a client could still stall or break the server (issue 27), over stdio.

Each test drives the real server (``python -m lsp_server``) with the byte-level
client (tests/raw_lsp_client.py) as a hostile or unlucky editor would: a URI
with a lone surrogate, a client that never answers ``window/workDoneProgress/create``,
a Content-Length over the limit, ``exit`` or the client's death while a large
document is parsed on a busy machine, positions given as strings or floats,
and a client that closes the server's stdout.
"""
from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from raw_lsp_client import RawLspClient, frame, server_env

#: starts processes and loads models: left out of the quick loop (pytest -m 'not slow and not editor')
pytestmark = pytest.mark.slow

#: generous: the machine running the tests is shared and loaded
WAIT_S = 60.0
#: what the issue asks of an exit or a dead client on a busy machine
EXIT_S = 5.0
CAPABILITIES = {"window": {"workDoneProgress": False},
                "workspace": {"workspaceEdit": {"documentChanges": True}, "configuration": True}}
A_TEXT = "def helper_function(x):\n    return x * 2\n"
B_TEXT = "from a import helper_function\n\nresult = helper_\n"
#: the issue's frame, byte for byte: a lone surrogate (an escape in the JSON) in the URI
SURROGATE_OPEN = (b'{"jsonrpc":"2.0","method":"textDocument/didOpen","params":{"textDocument":'
                  b'{"uri":"file:///ws/s\\ud800.py","languageId":"python","version":1,"text":"z = 1\\n"}}}')
SURROGATE_URI = "file:///ws/s\ud800.py"


def options(model_dir: Path, **extra: Any) -> dict[str, Any]:
    return {"model": str(model_dir), "device": "cpu", "threads": 1, "maxNewTokens": 4, "debounceMs": 0,
            "maxRequestsPerSecond": 0, **extra}


def launch(tmp_path: Path, name: str = "server", **kwargs: Any) -> RawLspClient:
    return RawLspClient([sys.executable, "-m", "lsp_server"], env=server_env(),
                        stderr_path=tmp_path / f"{name}-stderr.log", **kwargs)


def initialize(client: RawLspClient, opts: dict[str, Any], process_id: int | None = None,
               capabilities: dict[str, Any] | None = None) -> None:
    response = client.call("initialize", {"processId": process_id, "rootUri": None,
                                          "capabilities": capabilities or CAPABILITIES,
                                          "initializationOptions": opts}, timeout=WAIT_S)
    assert "result" in response, response
    client.notify("initialized", {})


def wait_ready(client: RawLspClient) -> None:
    ok = client.wait_for(lambda box: any(n.get("method") == "diffill/status" and n["params"]["state"] == "ready"
                                         for n in box.notifications), WAIT_S)
    assert ok, (client.notifications_of("diffill/status"), client.stderr_tail())


def open_doc(client: RawLspClient, uri: str, text: str) -> None:
    client.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python",
                                                            "version": 1, "text": text}})


def inline(client: RawLspClient, uri: str, position: dict[str, Any]) -> Any:
    return client.request("textDocument/inlineCompletion", {
        "textDocument": {"uri": uri}, "position": position, "context": {"triggerKind": 1}})


def popups(client: RawLspClient) -> list[str]:
    return [p["message"] for p in client.notifications_of("window/showMessage")]


def stderr_of(client: RawLspClient) -> str:
    return client.stderr_tail(1_000_000)


# -- one server for the cases that leave it serving ------------------------------------

@pytest.fixture(scope="module")
def server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RawLspClient]:
    client = launch(tmp_path_factory.mktemp("stalls"))
    initialize(client, options(tiny_model_dir))
    wait_ready(client)
    yield client
    assert client.close() == 0, client.stderr_tail()


def test_a_uri_with_a_lone_surrogate_is_refused_for_that_document_alone(server: RawLspClient) -> None:
    """Case 1: the surrogate URI made ``os.path.realpath`` fail for every request's context:
    "Error in server" pop-ups, -32603 with a traceback in ``data`` for diffill/context, no
    repository context for any document while it was open, and its didClose failed again."""
    c = server
    open_doc(c, "file:///ws/a.py", A_TEXT)
    open_doc(c, "file:///ws/b.py", B_TEXT)
    shown_before = len(popups(c))
    documents = c.call("diffill/stats", timeout=WAIT_S)["result"]["documents"]
    c.send_bytes(frame(SURROGATE_OPEN))
    response = c.call("diffill/context", {"textDocument": {"uri": "file:///ws/b.py"},
                                          "position": {"line": 2, "character": 16}}, timeout=WAIT_S)
    assert "result" in response, response
    assert [p["uri"] for p in response["result"]["pieces"]] == ["file:///ws/a.py"], response  # context still works
    assert "result" in c.wait_response(inline(c, "file:///ws/b.py", {"line": 2, "character": 16}), WAIT_S)
    # the refused document itself: a clear -32602, every time, and no completion work
    for _ in range(2):
        refused = c.wait_response(inline(c, SURROGATE_URI, {"line": 0, "character": 0}), WAIT_S)
        assert refused["error"]["code"] == -32602 and "refused" in refused["error"]["message"], refused
    c.notify("textDocument/didChange", {"textDocument": {"uri": SURROGATE_URI, "version": 2},
                                        "contentChanges": [{"text": "z = 2\n"}]})
    c.notify("textDocument/didClose", {"textDocument": {"uri": SURROGATE_URI}})
    after = c.call("diffill/stats", timeout=WAIT_S)
    assert after["result"]["documents"] == documents, after  # the refused document was never kept
    told = popups(c)[shown_before:]
    assert len(told) == 1 and "refused" in told[0] and "surrogate" in told[0], told  # once, and clearly
    assert not [m for m in told if "Error in server" in m]
    logs = [p["message"] for p in c.notifications_of("window/logMessage") if "ud800" in p["message"]]
    assert not logs, logs  # the didChange and didClose of the refused URI are quiet
    stderr = stderr_of(c)
    assert "Traceback" not in stderr and "repository context failed" not in stderr, stderr[-3000:]
    assert stderr.count("lsp_server.server:document file:///ws/s\\ud800.py was refused") == 1, stderr[-3000:]
    c.notify("textDocument/didClose", {"textDocument": {"uri": "file:///ws/a.py"}})
    c.notify("textDocument/didClose", {"textDocument": {"uri": "file:///ws/b.py"}})


def test_positions_must_be_integers(server: RawLspClient) -> None:
    """Positions given as strings or floats were served (cattrs turned "1" and 4.5 into
    ints); docs/PROTOCOL.md promises -32602 for params that do not fit their type.  Each
    -32602 is one line on stderr, not a traceback."""
    c = server
    uri = "file:///ws/positions.py"
    open_doc(c, uri, "def f(a, b):\n    return \n")
    before = stderr_of(c)
    bad = [{"line": "1", "character": "4"}, {"line": 1, "character": 4.5}, {"line": 1.0, "character": 4},
           {"line": True, "character": 4}]
    for position in bad:
        completion = c.request("textDocument/completion", {"textDocument": {"uri": uri}, "position": position})
        for msg_id in (inline(c, uri, position), completion):
            response = c.wait_response(msg_id, WAIT_S)
            error = response.get("error", {})
            assert error.get("code") == -32602 and "expected int" in error.get("message"), (position, response)
    past_end = c.wait_response(inline(c, uri, {"line": 9, "character": 0}), WAIT_S)
    assert past_end["error"]["code"] == -32602 and "data" not in past_end["error"], past_end
    assert "result" in c.wait_response(inline(c, uri, {"line": 1, "character": 11}), WAIT_S)
    new = stderr_of(c)[len(before):]
    assert "Traceback" not in new, new[-3000:]
    assert len([line for line in new.splitlines() if line.strip()]) <= 2 * len(bad) + 1, new  # one line each
    c.notify("textDocument/didClose", {"textDocument": {"uri": uri}})


def test_a_content_length_over_the_limit_loses_only_that_message(server: RawLspClient) -> None:
    """Case 3: after ``Content-Length: 300000000`` and a 66-byte body nothing more was
    answered (the reader waited for 300 MB), and the id-null error came only at the end
    of the input.  Now it comes at once, and the next frames are read."""
    c = server
    body = b'{"jsonrpc":"2.0","id":"lost","method":"diffill/stats","params":{}}'
    assert len(body) == 66
    nulls_before = len(c.responses_to(None))
    c.send_bytes(b"Content-Length: 300000000\r\n\r\n" + body)
    assert c.wait_for(lambda box: len(box.responses.get("null", [])) > nulls_before, 20), c.stderr_tail()
    refusal = c.responses_to(None)[-1]
    assert refusal["error"]["code"] == -32600 and "300000000" in refusal["error"]["message"], refusal
    first = c.request("diffill/stats", {})
    second = c.request("diffill/stats", {})
    assert "result" in c.wait_response(first, 20) and "result" in c.wait_response(second, 20)
    assert c.responses_to("lost") == []


# -- progress: a client that never answers window/workDoneProgress/create ---------------

def test_the_model_loads_while_the_progress_create_is_unanswered(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Case 2: the model load awaited the client's answer to workDoneProgress/create;
    a client that never answered got no completion, no fill and status "loading" forever."""
    c = launch(tmp_path)
    held: list[dict] = []
    c.handlers["window/workDoneProgress/create"] = lambda request: held.append(request)  # never answered
    try:
        caps = {**CAPABILITIES, "window": {"workDoneProgress": True}}
        initialize(c, options(tiny_model_dir), capabilities=caps)
        uri = "file:///ws/progress.py"
        open_doc(c, uri, "def f(a, b):\n    return \n")
        completion = inline(c, uri, {"line": 1, "character": 11})
        fill = c.request("workspace/executeCommand", {"command": "diffill.fillInTheMiddle", "arguments": [
            {"uri": uri, "position": {"line": 1, "character": 11}}]})
        assert "result" in c.wait_response(completion, WAIT_S), c.stderr_tail()
        assert "result" in c.wait_response(fill, WAIT_S), c.stderr_tail()
        wait_ready(c)
        assert held, "the server sent no window/workDoneProgress/create"
        assert c.notifications_of("$/progress") == []  # nothing for a token the client has not created
        for request in held:  # answered late: the progress begins and ends at once
            c.answer(request, {"result": None})
        assert c.wait_for(lambda box: sum(1 for n in box.notifications if n.get("method") == "$/progress"
                                          and n["params"]["value"]["kind"] == "end") >= 1, WAIT_S)
        kinds = [p["value"]["kind"] for p in c.notifications_of("$/progress")
                 if p["token"] == held[0]["params"]["token"]]
        assert kinds == ["begin", "end"], kinds
        assert not [m for m in popups(c) if "Error" in m], popups(c)
    finally:
        assert c.close() == 0, c.stderr_tail()


# -- exit and a dead client on a busy machine ---------------------------------------------

def big_python(megabytes: int) -> str:
    """Python source of about ``megabytes`` MB (64-byte lines, as the issue's 20 MB file)."""
    line = "def f{0:07d}(a):  # {1}\n    return a\n"
    pad = "x" * (64 * 2 - len(line.format(0, "")))
    return "".join(line.format(i, pad) for i in range(megabytes * 1_000_000 // 128))


@contextlib.contextmanager
def busy_cpu() -> Iterator[None]:
    """Two CPU-bound processes while the block runs (killed afterwards), as on a machine
    busy with a build: started once the server is set up, which they would only slow."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
        for spinner in spinners:
            spinner.wait(10)


def parsing_worker(client: RawLspClient) -> psutil.Process:
    """The server's index worker process, once it has started (it parses the big document)."""
    server = psutil.Process(client.proc.pid)
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        for child in server.children():
            try:
                if any("spawn_main" in part for part in child.cmdline()):
                    return child
            except psutil.Error:
                continue
        time.sleep(0.05)
    pytest.fail(f"no index worker process started\n{client.stderr_tail()}")


def open_big_document(client: RawLspClient) -> psutil.Process:
    open_doc(client, "file:///big.py", big_python(8))
    assert client.call("diffill/stats", timeout=WAIT_S)["result"]["documents"] == 1
    return parsing_worker(client)


def assert_gone(process: psutil.Process, within_s: float) -> None:
    """``process`` ends within ``within_s`` (a zombie has ended: reaping it is up to its
    new parent once the server is gone)."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"process {process.pid} still runs {within_s} s after the server exited")
        time.sleep(0.05)


def test_exit_does_not_wait_for_a_large_parse_on_a_busy_machine(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Case 4: with the CPU busy, ``exit`` waited minutes for the index worker's parse of
    a large document (the interpreter joined the process pool, the index thread waited
    for the result).  Now the worker is terminated after a short grace."""
    c = launch(tmp_path)
    try:
        initialize(c, options(tiny_model_dir))
        wait_ready(c)  # the engine is idle: only the index's work is left at exit
        worker = open_big_document(c)
        with busy_cpu():
            assert "result" in c.call("shutdown", timeout=WAIT_S)
            c.notify("exit")
            started = time.monotonic()
            try:
                code = c.proc.wait(EXIT_S)
            except subprocess.TimeoutExpired:
                pytest.fail(f"the server was still running {EXIT_S} s after exit\n{c.stderr_tail()}")
            assert code == 0, c.stderr_tail()
            assert_gone(worker, EXIT_S - (time.monotonic() - started) + 1.0)
        assert "Traceback" not in stderr_of(c), c.stderr_tail()
    finally:
        c.close()


def test_a_dead_client_ends_the_server_on_a_busy_machine(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Case 4, the orphan guarantee under load: the client process dies (its pipe to the
    server's stdin still held open by the test) while a large parse runs; the server
    must still exit within seconds."""
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    c = launch(tmp_path)
    try:
        initialize(c, options(tiny_model_dir), process_id=parent.pid)
        wait_ready(c)
        worker = open_big_document(c)
        with busy_cpu():
            parent.kill()
            parent.wait()
            started = time.monotonic()
            try:
                code = c.proc.wait(EXIT_S)
            except subprocess.TimeoutExpired:
                pytest.fail(f"the server outlived its client by {EXIT_S} s\n{c.stderr_tail()}")
            assert code == 1, code  # no shutdown was received
            assert_gone(worker, EXIT_S - (time.monotonic() - started) + 1.0)
    finally:
        parent.kill()
        c.close()


# -- a client that closes the server's stdout -----------------------------------------------

def test_the_server_stops_at_the_first_broken_pipe(tiny_model_dir: Path, tmp_path: Path) -> None:
    """With its stdout closed by the client, the server kept running the model for new
    requests and logged a BrokenPipeError with a traceback for each answer, until stdin
    closed.  Now the first failed write ends it (exit code 1: no shutdown)."""
    c = launch(tmp_path, read_output=False)
    try:
        c.request("initialize", {"processId": None, "rootUri": None, "capabilities": CAPABILITIES,
                                 "initializationOptions": options(tiny_model_dir)})
        answer = c.read_message()
        assert answer is not None and "result" in answer, answer
        assert c.proc.stdout is not None
        c.proc.stdout.close()  # the client stops reading: the server's next write fails
        c.notify("initialized", {})
        uri = "file:///ws/pipe.py"
        open_doc(c, uri, "def f(a, b):\n    return \n")
        try:
            for _ in range(20):
                inline(c, uri, {"line": 1, "character": 11})
        except (BrokenPipeError, OSError):
            pass  # the server has exited already
        try:
            code = c.proc.wait(30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the server kept running with its stdout closed\n{c.stderr_tail()}")
        assert code == 1, code
        stderr = stderr_of(c)
        assert "Traceback" not in stderr and stderr.count("closed the server's output") == 1, stderr[-3000:]
        assert stderr.count("BrokenPipe") <= 1, stderr[-3000:]
    finally:
        c.close()
