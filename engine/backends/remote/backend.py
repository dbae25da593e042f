"""What every remote backend shares: turning a server's stream of text pieces
into the engine's drafts and result, so that the language server and the CLI
use a remote engine exactly like the in-process one.

A kind (vllm, openai, llamacpp, ollama) says only how to build its request
body, how to read one streamed event (:class:`Piece`) and how to ask its
server what context it serves.  What they share, here:

* the served context: asked once, before the first request (``probe``), and
  every prompt is kept within it (``engine.backends.remote.window``);
* stop rules by mode: a single-line request (``InfillRequest.single_line``)
  asks the server to stop at the line break and to generate no more than a
  line's worth of tokens, and the stream is closed as soon as the line is
  complete, so that the server stops generating; a multi-line one asks a
  llama-server to stop a while after its first line break;
* the leading space a text-completion model writes after a prefix that ends in
  a space (its tokens start with the space) is dropped;
* ``notes``: what the user must be told once about the server (a suffix it
  ignores), for the CLI, the language server and ``diffill doctor``.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from engine.backends.base import DraftGenerator
from engine.backends.remote.http import Framing, HttpClient
from engine.backends.remote.window import Fitted, fit
from engine.cancellation import CancellationToken
from engine.context_format import format_context
from engine.errors import Cancelled, RemoteError
from engine.types import Alternative, Draft, InfillRequest, InfillResult

#: the context assumed for a server that does not say (or before it was asked): a served code
#: model has at least this much; the setting contextTokens (--context-tokens) overrides it
REMOTE_DEFAULT_CONTEXT_TOKENS = 2048
#: most tokens a single-line request asks for: a line longer than this is not a line to show
SINGLE_LINE_MAX_TOKENS = 64
#: a multi-line request to llama-server ends this long after its first line break
#: (``t_max_predict_ms``): a block that slow is not one to wait for in an editor
MULTI_LINE_TIME_LIMIT_MS = 2000
#: statuses that mean "this server has no such route": its answer to a probe is final
NO_SUCH_ROUTE = (400, 404, 405, 501)


@dataclass(frozen=True)
class Piece:
    """One streamed event, read: new text, whether it was the last, tokens so far."""

    text: str
    done: bool
    tokens: int | None = None


@dataclass(frozen=True)
class ServerInfo:
    """What a server says about itself: the context it serves (None: it does not
    say), and whether it is llama.cpp's llama-server."""

    context_tokens: int | None = None
    llama_cpp: bool = False


def stops_at_newline(request: InfillRequest) -> bool:
    """Whether the server may be told to stop at the first line break: a single
    line on a line that already has text (on a blank line the model may begin
    with line breaks, which the caller skips; the stream is closed then instead)."""
    line = request.prefix[request.prefix.rfind("\n") + 1:]
    return request.single_line and bool(line.strip())


def predict_tokens(request: InfillRequest) -> int:
    """Tokens the server may generate: a line's worth for a single line, else the canvas."""
    return min(request.max_new_tokens, SINGLE_LINE_MAX_TOKENS) if request.single_line else request.max_new_tokens


def finished_text(raw: str, fitted: Fitted, request: InfillRequest) -> str:
    """A whole answer as ``run`` would have streamed it: one space a model writes after a
    prefix ending in whitespace dropped, a single line cut at its end."""
    if fitted.prefix[-1:] in (" ", "\t") and raw.startswith(" "):
        raw = raw[1:]
    end = line_complete(raw) if request.single_line else -1
    return raw[:end].rstrip("\r") if end >= 0 else raw


def line_complete(middle: str) -> int:
    """Where the middle's first line ends (after leading line breaks), or -1 while it goes on."""
    lead = len(middle) - len(middle.lstrip("\r\n"))
    return middle.find("\n", lead) if lead < len(middle) else -1


class RemoteBackend:
    """A backend whose model runs on an inference server (see engine.backends.base)."""

    name = "remote"
    kind = "remote"
    #: requests run side by side; the HTTP client caps how many at once
    serialised = False
    #: how the streamed response is framed
    framing: Framing = "sse"
    path = "/"

    def __init__(self, client: HttpClient, model: str | None, context_tokens: int = 0) -> None:
        self.client = client
        self.model_name = model
        self.device = client.base_url
        self.dtype = "remote"
        #: the window the user set (contextTokens / --context-tokens): wins over what the server says
        self.configured_context = context_tokens or None
        self.server: ServerInfo | None = None  # None: not asked yet
        #: the server answered its tokenizer route with "no such route": not asked again
        self.no_tokenizer = False
        #: what the user must be told once about this server (shown by the CLI, the server, doctor)
        self.notes: list[str] = []
        self.model_path = f"{self.kind}:{model or '(server default)'}"
        self.name = self.kind

    @property
    def context_tokens(self) -> int:
        """The served window: the setting, else what the server said, else the default."""
        served = self.server.context_tokens if self.server else None
        return self.configured_context or served or REMOTE_DEFAULT_CONTEXT_TOKENS

    @property
    def window_tokens(self) -> int:
        return self.context_tokens

    # -- asking the server -------------------------------------------------------
    def probe(self, cancel: CancellationToken | None = None) -> ServerInfo:
        """Ask the server once what it serves (before the first request).  A server
        that is busy or refuses is asked again next time, one that cannot be
        reached fails the request here, and one that has no such route is taken
        as saying nothing."""
        if self.server is not None:
            return self.server
        try:
            info = self.server_info(cancel)
        except Cancelled:
            raise
        except RemoteError as exc:
            if exc.status is None:
                raise  # not reached: the request would fail the same way (and wait as long again)
            if exc.status not in NO_SUCH_ROUTE:
                return ServerInfo()  # busy or refused: asked again next time; the request will say
            info = ServerInfo()
        self.server = info
        self.check_server(info)
        return info

    def server_info(self, cancel: CancellationToken | None) -> ServerInfo:
        """The kind's way of asking (OpenAI-style: the model list)."""
        return ServerInfo()

    def check_server(self, info: ServerInfo) -> None:
        """Add to ``notes`` what the user must know about this server (kinds override)."""

    def count_tokens(self, text: str, cancel: CancellationToken | None = None) -> int | None:
        """The server's token count for ``text`` (None: it has no tokenizer route)."""
        return None

    def ask_tokenizer(self, path: str, body: dict[str, Any], read: Callable[[Any], int | None],
                      cancel: CancellationToken | None) -> int | None:
        """POST ``body`` to the server's tokenizer route and ``read`` the count from
        its answer; None where it fails (the caller estimates), and never again
        after the server said it has no such route."""
        if self.no_tokenizer:
            return None
        try:
            [data] = list(self.client.events("POST", path, body, "json", cancel))
        except Cancelled:
            raise
        except RemoteError as exc:
            self.no_tokenizer = exc.status in NO_SUCH_ROUTE
            return None
        count = read(data)
        return count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else None

    def fit(self, request: InfillRequest, cancel: CancellationToken | None = None) -> Fitted:
        """The request within the served window (``engine.backends.remote.window``)."""
        return fit(request, self.context_tokens, predict_tokens(request), lambda text: self.count_tokens(text, cancel))

    def prompt_prefix(self, request: InfillRequest, fitted: Fitted) -> str:
        """The prefix with other files' pieces before it (file-path headers,
        ``engine.context_format``): how a server that takes text sees repository context."""
        return (format_context(fitted.pieces, request.path) if fitted.pieces else "") + fitted.prefix

    # -- one request ---------------------------------------------------------------
    def body(self, request: InfillRequest, fitted: Fitted) -> dict[str, Any]:
        """The JSON request body; it must carry both prefix and suffix."""
        raise NotImplementedError

    def piece(self, event: Any) -> Piece:
        """Read one streamed event."""
        raise NotImplementedError

    def run(self, request: InfillRequest, cancel: CancellationToken) -> DraftGenerator:
        """Stream the server's answer as drafts: one per event that adds text."""
        start = time.perf_counter()
        self.probe(cancel)
        fitted = self.fit(request, cancel)
        # a model whose tokens start with a space writes one after a prefix that ends in one
        drop_space = fitted.prefix[-1:] in (" ", "\t")
        middle, tokens, step, first_ms = "", 0, 0, None
        finished = closed = False
        events = self.send(request, fitted, cancel)
        try:
            for event in events:
                if finished:
                    continue
                piece = self.piece(event)
                if piece.text:
                    if first_ms is None:
                        first_ms = (time.perf_counter() - start) * 1000.0
                    middle += piece.text
                    if drop_space and middle.startswith(" "):
                        middle, drop_space = middle[1:], False
                    elif middle:
                        drop_space = False
                    tokens = piece.tokens if piece.tokens is not None else tokens + 1
                    step += 1
                    end = line_complete(middle) if request.single_line else -1
                    if end >= 0:  # the line is complete: stop the server by closing the stream
                        middle = middle[:end].rstrip("\r")
                        finished = closed = True
                        break
                    if not piece.done:
                        yield Draft(step=step, steps=request.max_new_tokens, text=middle)
                if piece.done:
                    finished = True  # read on: the body ends right after, and the connection is reused
        finally:
            events.close()  # an early end closes the connection, which ends the server's generation
        if not finished:
            raise RemoteError(f"the server at {self.client.base_url} ended the answer without finishing it "
                              "(stream dropped)")
        yield Draft(step=max(step, 1), steps=max(step, 1), text=middle, done=True)
        others = self.other_middles(request, fitted, cancel) if request.alternatives > 1 else []
        total = (time.perf_counter() - start) * 1000.0
        timings = {"total_ms": total, "first_piece_ms": first_ms if first_ms is not None else total}
        if closed:
            timings["closed_early"] = 1.0
        if fitted.cut:
            timings["window_cut"] = 1.0
        seen, alternatives = {middle}, []
        for text in (finished_text(raw, fitted, request) for raw in others):
            if text and text not in seen:
                seen.add(text)
                alternatives.append(Alternative(text))
        return InfillResult(middle=middle, forwards=0, tokens=tokens, timings=timings, pieces=step,
                            alternatives=alternatives[:request.alternatives - 1])

    def other_middles(self, request: InfillRequest, fitted: Fitted, cancel: CancellationToken) -> list[str]:
        """Other answers to ``request`` in one more request, raw (kinds whose API can give
        several: ``n``); none by default."""
        return []

    def send(self, request: InfillRequest, fitted: Fitted, cancel: CancellationToken) -> Generator[Any, None, None]:
        """The response events for ``request`` (a kind may retry differently)."""
        return self.client.events("POST", self.path, self.body(request, fitted), self.framing, cancel)

    def served_models(self, cancel: CancellationToken | None = None) -> list[dict[str, Any]]:
        """The models the server offers, as ``{"id", "context_tokens"?}`` (for doctor)."""
        data = self.client.get_json("/v1/models", cancel)
        out = []
        for item in data.get("data", []) if isinstance(data, dict) else []:
            entry: dict[str, Any] = {"id": item.get("id")}
            context = served_context(item)
            if context:
                entry["context_tokens"] = context
            out.append(entry)
        return out


def served_context(item: Any) -> int | None:
    """An OpenAI-style model entry's context: vLLM's ``max_model_len``, llama-server's ``meta.n_ctx``."""
    if not isinstance(item, dict):
        return None
    meta = item.get("meta")
    for value in (item.get("max_model_len"), meta.get("n_ctx") if isinstance(meta, dict) else None):
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None
