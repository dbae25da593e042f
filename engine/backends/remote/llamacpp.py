"""`llamacpp`: llama.cpp's ``llama-server`` ``/infill`` endpoint (FIM models).

Request (llama.cpp tools/server README, "POST /infill"): ``{"input_prefix",
"input_suffix", "input_extra": [{"filename", "text"}], "n_predict",
"cache_prompt", "stream"}`` plus any ``/completion`` option; the stream is
server-sent events ``data: {"content": str, "stop": bool, ...}``, the last one
with ``"stop": true`` and ``tokens_predicted``.
"""
from __future__ import annotations

from typing import Any

from engine.backends.remote.backend import Piece, RemoteBackend
from engine.context_format import estimate_tokens, extra_files
from engine.errors import RemoteError
from engine.types import InfillRequest


class LlamaCppBackend(RemoteBackend):
    kind = "llamacpp"
    path = "/infill"
    framing = "sse"

    def extra_context(self, request: InfillRequest) -> list[dict[str, str]]:
        """Other files' pieces, ``{"filename", "text"}`` each, most relevant last
        (nearest the prefix: llama.cpp lays them out in order, each after a
        file separator), cut to the shared token estimate."""
        return extra_files(request, estimate_tokens, self.window_tokens, request.max_new_tokens)

    def body(self, request: InfillRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"input_prefix": request.prefix, "input_suffix": request.suffix,
                                "input_extra": self.extra_context(request), "n_predict": request.max_new_tokens,
                                "cache_prompt": True, "stream": True, "temperature": 0.0}
        if request.seed is not None:
            body["seed"] = request.seed
        return body

    def piece(self, event: Any) -> Piece:
        if not isinstance(event, dict) or "content" not in event:
            raise RemoteError(f"the server at {self.client.base_url} sent an unexpected event: {str(event)[:120]}")
        done = bool(event.get("stop"))
        tokens = event.get("tokens_predicted") if done else None
        return Piece(str(event["content"]), done, tokens if isinstance(tokens, int) else None)
