"""Loopback stand-ins for the inference servers the remote backends talk to.

These are NOT the engines: each follows the engine's documented HTTP API as
read on the date below, and tests that use one name what it follows.  Nothing
in the suite runs against a real vLLM or Ollama server; llama.cpp's own
llama-server runs in tests/test_llamacpp_real.py, and its stand-in here stays
for what a real server cannot be made to do (429/503, hangs, dropped streams,
TLS and proxies in front of it).

* vLLM >= 0.24 OpenAI-compatible server (docs.vllm.ai "OpenAI-Compatible
  Server", "Custom Arguments" for ``vllm_xargs``): ``POST /v1/completions``
  streams ``data: {"choices": [{"text", "finish_reason"}]}`` events and
  ``data: [DONE]``; a request with ``suffix`` gets HTTP 400 ``{"error":
  {"message": "suffix is not currently supported", "type":
  "BadRequestError", "code": 400}}`` (vllm-project/vllm issues 9976, 44228);
  ``GET /v1/models`` lists ``{"id", "max_model_len"}``.  ``vllm_xargs`` are
  checked as vLLM PR 57250's ``validate_diffusion_sampling_params`` does
  (``diffusion_seed_canvas`` a list of exactly 256 token ids,
  ``diffusion_pinned`` a list of positions with a seed; 400 with its
  messages) where ``pinned=True``; ``pinned=False`` plays a release, which
  passes unknown ``vllm_xargs`` through unchecked and ignores them.
* OpenAI legacy completions API (``suffix`` accepted), same stream format.
* llama.cpp ``llama-server`` (tools/server README, ``POST /infill``):
  ``input_prefix``, ``input_suffix``, ``input_extra``, ``n_predict``,
  ``stream``; events ``data: {"content", "stop"}``, the last with
  ``"stop": true`` and ``tokens_predicted``.
* Ollama (docs "Generate a completion", ``POST /api/generate``): ``prompt``,
  ``suffix``, ``raw``, ``stream``; NDJSON ``{"response", "done"}`` lines, the
  last with ``"done": true``; ``GET /api/tags`` lists models.

For benchmarks the server times its own work on each POST, from the moment
its request line is read to the last byte written, and hands the times out
(then forgets them) at ``GET /_standin/timings`` as ``{"processing_ms": [...]}``
in arrival order: ``diffill bench lsp`` subtracts them to get the client's
own overhead.  Real engines have no such route.

The answer is ``pieces`` (default ``MIDDLE_PIECES``), one event each.
Faults, set on the server: ``statuses`` (answered in turn before a normal
answer to a POST, e.g. [429]), ``api_key`` (401 without ``Bearer <key>``), ``hang``
(read a POST, never answer), ``delay_s`` between stream events,
``drop_after`` (close the connection mid-stream after N events),
``close_idle`` (close each connection right after its answer, without saying
so in a header, as a server whose keep-alive timeout ran out does).  The server
records every completion request's body and when a client closed a connection it was
holding open (``closed_at``), so tests can check cancellation server-side.
"""
from __future__ import annotations

import json
import select
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: how often serve_forever looks for shutdown(): a test's teardown waits up to this long
POLL_S = 0.02
#: what every stand-in answers, in pieces (so a stream has several events)
MIDDLE_PIECES = ["return ", "a", " + b"]
VLLM_SUFFIX_ERROR = "suffix is not currently supported"


class StandinServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, kind: str, *, pinned: bool = True) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.kind = kind
        self.pinned = pinned
        self.statuses: list[int] = []
        self.api_key: str | None = None
        self.hang = False
        self.delay_s = 0.0
        self.drop_after: int | None = None
        self.close_idle = False
        #: the answer's text, one streamed event per piece
        self.pieces: list[str] = list(MIDDLE_PIECES)
        self.requests: list[dict[str, Any]] = []
        self.headers_seen: list[dict[str, str]] = []
        self.closed_at: float | None = None
        #: milliseconds each POST took inside this server (see GET /_standin/timings)
        self.processing_ms: list[float] = []
        #: POSTs whose handler has not yet recorded its time (guarded by ``posts_done``)
        self.posts_in_flight = 0
        self.posts_done = threading.Condition()
        self.stop_event = threading.Event()
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": POLL_S}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> StandinServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # as real servers do: small stream events go out at once
    server: StandinServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def parse_request(self) -> bool:
        self._started = time.perf_counter()  # the request line has just been read
        self._answered: float | None = None  # when the answer's last bytes went out
        return super().parse_request()

    def _sent(self, data: bytes) -> None:
        """Write and flush ``data``.  The time the answer ends is taken just before its
        last bytes go out: after them the client may have read the answer and taken its
        own time before this thread runs again."""
        self._answered = time.perf_counter()
        self.wfile.write(data)
        self.wfile.flush()

    # --- helpers ---------------------------------------------------------------

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self._sent(data)

    def _error(self, status: int, message: str) -> None:
        if self.server.kind == "ollama":
            self._json(status, {"error": message})
        else:
            self._json(status, {"error": {"message": message, "type": "BadRequestError", "param": None,
                                          "code": status}})

    def _chunk(self, data: bytes) -> None:
        self._sent(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    def _wait_for_close(self) -> None:
        """Hold the connection; note when the client closes it."""
        sock = self.connection
        while not self.server.stop_event.is_set():
            ready, _, _ = select.select([sock], [], [], 0.005)
            if ready:
                try:
                    if sock.recv(1, socket.MSG_PEEK) == b"":
                        self.server.closed_at = time.perf_counter()
                        return
                except OSError:
                    self.server.closed_at = time.perf_counter()
                    return

    def _gate(self, post: bool = True) -> bool:
        """Faults that answer before the real handler; True if one did (``statuses``
        and ``hang`` hit completions only: a busy or stuck server is one that generates)."""
        srv = self.server
        if srv.api_key is not None and self.headers.get("Authorization") != f"Bearer {srv.api_key}":
            self._error(401, "Invalid API key")
            return True
        if srv.statuses and post:
            status = srv.statuses.pop(0)
            self._json(status, {"error": {"message": "server busy", "code": status}} if srv.kind != "ollama"
                       else {"error": "server busy"}, {"Retry-After": "0"})
            return True
        if srv.hang and post:
            self._wait_for_close()
            self.close_connection = True
            return True
        return False

    # --- routes ----------------------------------------------------------------

    def do_GET(self) -> None:
        if self.path == "/_standin/timings":
            srv = self.server
            # a client has read a whole answer a moment before its handler records the time
            with srv.posts_done:
                srv.posts_done.wait_for(lambda: srv.posts_in_flight == 0, timeout=5)
                times, srv.processing_ms = srv.processing_ms, []
            self._json(200, {"processing_ms": times})
            return
        self.server.headers_seen.append(dict(self.headers))
        if self._gate(post=False):
            return
        kind = self.server.kind
        if kind == "ollama" and self.path == "/api/tags":
            self._json(200, {"models": [{"name": "standin-fim:latest", "model": "standin-fim:latest"}]})
        elif kind != "ollama" and self.path == "/v1/models":
            self._json(200, {"object": "list", "data": [{"id": "standin-model", "object": "model",
                                                         "max_model_len": 8192}]})
        else:
            self._error(404, f"no route {self.path}")

    def do_POST(self) -> None:
        srv = self.server
        self._timed = True
        with srv.posts_done:
            srv.posts_in_flight += 1
        try:
            self._post()
        finally:
            with srv.posts_done:
                if self._timed:  # completions only: a route the stand-in lacks is not work it did
                    srv.processing_ms.append(((self._answered or time.perf_counter()) - self._started) * 1000.0)
                srv.posts_in_flight -= 1
                srv.posts_done.notify_all()

    def _post(self) -> None:
        srv = self.server
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        srv.headers_seen.append(dict(self.headers))
        routes = {"vllm": "/v1/completions", "openai": "/v1/completions", "llamacpp": "/infill",
                  "ollama": "/api/generate"}
        if self.path != routes[srv.kind]:  # e.g. /tokenize, which no stand-in has: the client estimates
            self._timed = False
            self._error(404, f"no route {self.path}")
            return
        srv.requests.append(body)
        if self._gate():
            return
        if srv.kind == "vllm":
            if body.get("suffix") is not None:
                self._error(400, VLLM_SUFFIX_ERROR)
                return
            reason = _diffusion_xargs_error(body.get("vllm_xargs") or {}) if srv.pinned else None
            if reason:
                self._error(400, reason)
                return
        if srv.kind == "ollama" and not body.get("model"):
            self._error(400, "model is required")
            return
        self._stream(body)

    def _events(self, body: dict[str, Any]) -> list[bytes]:
        kind = self.server.kind
        out = []
        pieces = self.server.pieces
        n = len(pieces)
        # OpenAI's ``n``: choice 0 is the usual answer, choice i ends in " #i" (as vLLM, one event per choice)
        choices = body.get("n", 1) if kind in ("vllm", "openai") and isinstance(body.get("n"), int) else 1
        for i, piece in enumerate(pieces):
            last = i == n - 1
            if kind in ("vllm", "openai"):
                for index in range(choices):
                    text = piece + (f" #{index}" if last and index else "")
                    obj: dict[str, Any] = {"id": "cmpl-standin", "object": "text_completion", "model": "standin-model",
                                           "choices": [{"index": index, "text": text, "logprobs": None,
                                                        "finish_reason": "stop" if last else None}]}
                    out.append(b"data: " + json.dumps(obj).encode() + b"\n\n")
            elif kind == "llamacpp":
                out.append(b"data: " + json.dumps({"content": piece, "stop": False}).encode() + b"\n\n")
            else:
                out.append(json.dumps({"model": "standin-fim", "response": piece, "done": False}).encode() + b"\n")
        if kind in ("vllm", "openai"):
            out.append(b"data: [DONE]\n\n")
        elif kind == "llamacpp":
            out.append(b"data: " + json.dumps({"content": "", "stop": True, "tokens_predicted": n}).encode()
                       + b"\n\n")
        else:
            out.append(json.dumps({"model": "standin-fim", "response": "", "done": True, "done_reason": "stop",
                                   "eval_count": n}).encode() + b"\n")
        return out

    def _stream(self, body: dict[str, Any]) -> None:
        srv = self.server
        self.send_response(200)
        ctype = "application/x-ndjson" if srv.kind == "ollama" else "text/event-stream"
        self.send_header("Content-Type", ctype)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for i, event in enumerate(self._events(body)):
                if srv.drop_after is not None and i >= srv.drop_after:
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if srv.delay_s and i and srv.stop_event.wait(srv.delay_s):
                    return
                self._chunk(event)
            self._sent(b"0\r\n\r\n")
            if srv.close_idle:
                self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            srv.closed_at = time.perf_counter()
            self.close_connection = True


#: DiffusionGemma's canvas (``--diffusion-config '{"canvas_length": 256}'``)
CANVAS_LENGTH = 256


def _diffusion_xargs_error(xargs: dict[str, Any]) -> str | None:
    """PR 57250's checks on seeded/pinned canvases (a subset), with its messages."""
    seed = xargs.get("diffusion_seed_canvas")
    if seed is not None:
        if not isinstance(seed, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in seed):
            return "diffusion_seed_canvas must be a list of token ids."
        if len(seed) != CANVAS_LENGTH:
            return f"diffusion_seed_canvas must hold exactly {CANVAS_LENGTH} ids, got {len(seed)}."
    pins = xargs.get("diffusion_pinned")
    if pins is not None:
        if not isinstance(pins, list) or not all(isinstance(p, int) and not isinstance(p, bool) for p in pins):
            return "diffusion_pinned must be a list of canvas positions."
        if seed is None:
            return "diffusion_pinned needs a diffusion_seed_canvas to hold."
    return None


def main() -> None:
    """Run one stand-in in its own process (benchmarks: keeps its threads out of
    the measuring process): ``python tests/remote_standin.py KIND``; prints the URL."""
    import sys

    kind = sys.argv[1] if len(sys.argv) > 1 else "llamacpp"
    with StandinServer(kind) as srv:
        print(srv.url, flush=True)
        try:
            srv.stop_event.wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
