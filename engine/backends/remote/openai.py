"""`openai`: an OpenAI-compatible completions endpoint that takes ``suffix``
(fill-in-the-middle services such as DeepSeek's or Mistral's FIM completions,
or a gateway in front of a FIM model).

Request (OpenAI legacy completions API): ``{"model", "prompt": prefix,
"suffix": suffix, "max_tokens", "temperature", "stream": true}``; the stream
is server-sent events, ``data: {"choices": [{"text", "finish_reason"}]}``,
ending with ``data: [DONE]``.
"""
from __future__ import annotations

from typing import Any

from engine.backends.remote.backend import Piece, RemoteBackend
from engine.errors import RemoteError
from engine.types import InfillRequest

DEFAULT_PATH = "/v1/completions"


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

    def common(self, request: InfillRequest) -> dict[str, Any]:
        """Fields every OpenAI-style completion request carries."""
        body: dict[str, Any] = {"max_tokens": request.max_new_tokens, "temperature": 0.0, "stream": True}
        if self.model_name:
            body["model"] = self.model_name
        if request.seed is not None:
            body["seed"] = request.seed
        return body

    def body(self, request: InfillRequest) -> dict[str, Any]:
        return {**self.common(request), "prompt": self.prompt_prefix(request), "suffix": request.suffix}

    def piece(self, event: Any) -> Piece:
        return completion_piece(event, self.client.base_url)


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
