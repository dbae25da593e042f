"""`ollama`: Ollama's ``/api/generate`` with ``suffix``.

Request (Ollama API docs, "Generate a completion"): ``{"model", "prompt":
prefix, "suffix": suffix, "raw": false, "stream": true, "options":
{"num_predict", "temperature", "seed"}}``.  ``raw`` stays false on purpose: the
model's own template is what places the suffix (FIM tokens); a raw prompt would
drop it.  The stream is one JSON object per line, ``{"response": str, "done":
bool}``, the last with ``"done": true`` and ``eval_count``.

Ollama serves ``num_ctx`` tokens (its default, or the server's
``OLLAMA_CONTEXT_LENGTH``) and silently drops the start of a longer prompt:
the window is the setting contextTokens, sent as ``num_ctx``, else Ollama's
long-standing default of 2048, which every version serves at least.
"""
from __future__ import annotations

from typing import Any

from engine.backends.remote.backend import Piece, RemoteBackend, ServerInfo, predict_tokens, stops_at_newline
from engine.backends.remote.window import Fitted
from engine.cancellation import CancellationToken
from engine.errors import RemoteError
from engine.types import InfillRequest

#: what every Ollama version serves at least when num_ctx is not sent
OLLAMA_DEFAULT_CONTEXT = 2048


class OllamaBackend(RemoteBackend):
    kind = "ollama"
    path = "/api/generate"
    framing = "ndjson"

    def server_info(self, cancel: CancellationToken | None) -> ServerInfo:
        return ServerInfo(OLLAMA_DEFAULT_CONTEXT)

    def body(self, request: InfillRequest, fitted: Fitted) -> dict[str, Any]:
        options: dict[str, Any] = {"num_predict": predict_tokens(request), "temperature": 0.0}
        if self.configured_context:
            options["num_ctx"] = self.configured_context
        if stops_at_newline(request):
            options["stop"] = ["\n"]
        if request.seed is not None:
            options["seed"] = request.seed
        return {"model": self.model_name, "prompt": self.prompt_prefix(request, fitted), "suffix": fitted.suffix,
                "raw": False, "stream": True, "options": options}

    def piece(self, event: Any) -> Piece:
        if not isinstance(event, dict):
            raise RemoteError(f"the server at {self.client.base_url} sent an unexpected line: {str(event)[:120]}")
        if event.get("error"):  # Ollama reports failures mid-stream this way
            raise RemoteError(f"the server at {self.client.base_url} failed while answering: {event['error']}")
        done = bool(event.get("done"))
        tokens = event.get("eval_count") if done else None
        return Piece(str(event.get("response", "")), done, tokens if isinstance(tokens, int) else None)

    def served_models(self, cancel: CancellationToken | None = None) -> list[dict[str, Any]]:
        data = self.client.get_json("/api/tags", cancel)
        models = data.get("models", []) if isinstance(data, dict) else []
        return [{"id": m.get("name") or m.get("model")} for m in models if isinstance(m, dict)]
