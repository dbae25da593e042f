"""`openai`: an OpenAI-compatible completions endpoint that takes ``suffix``
(fill-in-the-middle services such as DeepSeek's or Mistral's FIM completions,
or a gateway in front of a FIM model).

Request (OpenAI legacy completions API): ``{"model", "prompt": prefix,
"suffix": suffix, "max_tokens", "temperature", "stream": true}``; the stream
is server-sent events, ``data: {"choices": [{"text", "finish_reason"}]}``,
ending with ``data: [DONE]``.

The served context comes from the model list (``/v1/models``: vLLM's
``max_model_len``, llama-server's ``meta.n_ctx``).  llama.cpp's llama-server
answers ``/v1/completions`` too, but ignores ``suffix`` there (HTTP 200, the
prefix alone is evaluated): it is recognised by its model list
(``owned_by: llamacpp``) and the user is told, once, to use the ``llamacpp``
kind (``/infill``), which sends the suffix.
"""
from __future__ import annotations

from typing import Any

from engine.backends.remote.backend import (
    Piece,
    RemoteBackend,
    ServerInfo,
    predict_tokens,
    served_context,
    stops_at_newline,
)
from engine.backends.remote.window import Fitted
from engine.cancellation import CancellationToken
from engine.errors import RemoteError
from engine.types import InfillRequest

DEFAULT_PATH = "/v1/completions"
#: sampling temperature of the request that asks for alternatives
ALTERNATIVES_TEMPERATURE = 0.8


def split_endpoint(url: str, default_path: str = DEFAULT_PATH) -> tuple[str, str]:
    """(base URL, path): a URL ending in ``/completions`` names the endpoint
    itself, one ending in ``/v1`` is the API root (OpenAI clients' convention),
    anything else is the server root."""
    url = url.rstrip("/")
    scheme, sep, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    base = f"{scheme}{sep}{host}"
    path = f"/{path}" if slash else ""
    if path.endswith("/completions"):
        return base, path
    if path.endswith("/v1"):
        return base, path + default_path.removeprefix("/v1")
    return base, path + default_path


class OpenAICompletionsBackend(RemoteBackend):
    kind = "openai"
    framing = "sse"

    def __init__(self, *args: Any, path: str = DEFAULT_PATH, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.path = path

    @property
    def models_path(self) -> str:
        """The model list beside the completions endpoint (``/v1/models`` for ``/v1/completions``)."""
        return self.path.rsplit("/completions", 1)[0] + "/models"

    def server_info(self, cancel: CancellationToken | None) -> ServerInfo:
        data = self.client.get_json(self.models_path, cancel)
        items = [i for i in data.get("data", []) if isinstance(i, dict)] if isinstance(data, dict) else []
        mine = [i for i in items if i.get("id") == self.model_name] or items[:1]
        llama = any(i.get("owned_by") == "llamacpp" for i in items)
        return ServerInfo(served_context(mine[0]) if mine else None, llama_cpp=llama)

    def check_server(self, info: ServerInfo) -> None:
        if info.llama_cpp and self.kind == "openai":
            self.notes.append(
                f"the server at {self.client.base_url} is llama.cpp's llama-server, whose /v1/completions "
                "ignores the suffix (the code after the cursor never reaches the model): use the backend "
                "llamacpp (--backend llamacpp, setting backend), which sends it to /infill")

    def count_tokens(self, text: str, cancel: CancellationToken | None = None) -> int | None:
        if self.server is not None and self.server.llama_cpp:
            from engine.backends.remote.llamacpp import llama_tokenize

            return llama_tokenize(self, text, cancel)
        return None

    def common(self, request: InfillRequest) -> dict[str, Any]:
        """Fields every OpenAI-style completion request carries: the stop rules by mode."""
        body: dict[str, Any] = {"max_tokens": predict_tokens(request), "temperature": 0.0, "stream": True}
        if stops_at_newline(request):
            body["stop"] = ["\n"]
        if self.model_name:
            body["model"] = self.model_name
        if request.seed is not None:
            body["seed"] = request.seed
        return body

    def body(self, request: InfillRequest, fitted: Fitted) -> dict[str, Any]:
        return {**self.common(request), "prompt": self.prompt_prefix(request, fitted), "suffix": fitted.suffix}

    def piece(self, event: Any) -> Piece:
        return completion_piece(event, self.client.base_url)

    def other_middles(self, request: InfillRequest, fitted: Fitted, cancel: CancellationToken) -> list[str]:
        """``request.alternatives`` answers in one request (``n``), sampled (a greedy ``n`` would
        repeat the primary), collected from the stream by choice index."""
        body = {**self.body(request, fitted), "n": request.alternatives, "temperature": ALTERNATIVES_TEMPERATURE}
        texts: dict[int, str] = {}
        for event in self.client.events("POST", self.path, body, self.framing, cancel):
            for choice in event.get("choices", []) if isinstance(event, dict) else []:
                if isinstance(choice, dict) and isinstance(choice.get("index"), int):
                    texts[choice["index"]] = texts.get(choice["index"], "") + (choice.get("text") or "")
        return [texts[i] for i in sorted(texts)]


def completion_piece(event: Any, where: str) -> Piece:
    """One OpenAI completions stream chunk (vLLM sends the same shape)."""
    try:
        choice = event["choices"][0]
        text = choice.get("text") or ""
        done = choice.get("finish_reason") is not None
    except (KeyError, IndexError, TypeError, AttributeError):
        if isinstance(event, dict) and "error" in event:  # an error sent inside the stream
            raise RemoteError(f"the server at {where} failed while answering: {event['error']}") from None
        raise RemoteError(f"the server at {where} sent an unexpected chunk: {str(event)[:120]}") from None
    usage = event.get("usage") if isinstance(event, dict) else None
    tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
    return Piece(text, done, tokens)
