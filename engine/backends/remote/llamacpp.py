"""`llamacpp`: llama.cpp's ``llama-server`` ``/infill`` endpoint (FIM models).

Request (llama.cpp tools/server README, "POST /infill"): ``{"input_prefix",
"input_suffix", "input_extra": [{"filename", "text"}], "n_predict",
"cache_prompt", "stream"}`` plus any ``/completion`` option; the stream is
server-sent events ``data: {"content": str, "stop": bool, ...}``, the last one
with ``"stop": true`` and ``tokens_predicted``.

The served context is ``GET /props``' ``default_generation_settings.n_ctx``
(per slot), and ``POST /tokenize`` counts tokens with the model's own
tokenizer; ``stop``, ``n_predict`` and ``t_max_predict_ms`` end a request
as early as its mode allows.
"""
from __future__ import annotations

from typing import Any

from engine.backends.remote.backend import (
    MULTI_LINE_TIME_LIMIT_MS,
    Piece,
    RemoteBackend,
    ServerInfo,
    predict_tokens,
    stops_at_newline,
)
from engine.backends.remote.window import Fitted
from engine.cancellation import CancellationToken
from engine.errors import RemoteError
from engine.types import InfillRequest


class LlamaCppBackend(RemoteBackend):
    kind = "llamacpp"
    path = "/infill"
    framing = "sse"

    def server_info(self, cancel: CancellationToken | None) -> ServerInfo:
        return llama_props(self, cancel)

    def count_tokens(self, text: str, cancel: CancellationToken | None = None) -> int | None:
        return llama_tokenize(self, text, cancel)

    def extra_context(self, fitted: Fitted) -> list[dict[str, str]]:
        """Other files' pieces, ``{"filename", "text"}`` each, most relevant last
        (nearest the prefix: llama.cpp lays them out in order, each after a
        file separator), as fitted to the window."""
        return [{"filename": path, "text": text.rstrip("\n") + "\n"} for path, text in fitted.pieces]

    def body(self, request: InfillRequest, fitted: Fitted) -> dict[str, Any]:
        body: dict[str, Any] = {"input_prefix": fitted.prefix, "input_suffix": fitted.suffix,
                                "input_extra": self.extra_context(fitted), "n_predict": predict_tokens(request),
                                "cache_prompt": True, "stream": True, "temperature": 0.0}
        if stops_at_newline(request):
            body["stop"] = ["\n"]
        elif not request.single_line:
            body["t_max_predict_ms"] = MULTI_LINE_TIME_LIMIT_MS
        if request.seed is not None:
            body["seed"] = request.seed
        return body

    def piece(self, event: Any) -> Piece:
        if not isinstance(event, dict) or "content" not in event:
            raise RemoteError(f"the server at {self.client.base_url} sent an unexpected event: {str(event)[:120]}")
        done = bool(event.get("stop"))
        tokens = event.get("tokens_predicted") if done else None
        return Piece(str(event["content"]), done, tokens if isinstance(tokens, int) else None)


def llama_props(backend: RemoteBackend, cancel: CancellationToken | None) -> ServerInfo:
    """llama-server's ``GET /props``: the context per slot; a server without the
    route (HTTP error) is not llama-server, or one too old to say."""
    data = backend.client.get_json("/props", cancel)
    settings = data.get("default_generation_settings") if isinstance(data, dict) else None
    n_ctx = settings.get("n_ctx") if isinstance(settings, dict) else None
    valid = isinstance(n_ctx, int) and not isinstance(n_ctx, bool) and n_ctx > 0
    return ServerInfo(n_ctx if valid else None, llama_cpp=isinstance(data, dict) and "build_info" in data)


def llama_tokenize(backend: RemoteBackend, text: str, cancel: CancellationToken | None) -> int | None:
    """llama-server's ``POST /tokenize`` token count (None when it fails: the caller estimates)."""
    def read(data: Any) -> int | None:
        tokens = data.get("tokens") if isinstance(data, dict) else None
        return len(tokens) if isinstance(tokens, list) else None

    return backend.ask_tokenizer("/tokenize", {"content": text, "add_special": False}, read, cancel)
