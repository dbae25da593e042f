"""Remote backends: a model served by an existing inference engine over HTTP,
behind the same Backend protocol as the in-process models.

Kinds: ``vllm`` (DiffusionGemma on vLLM), ``openai`` (OpenAI-compatible
completions with ``suffix``), ``llamacpp`` (llama-server ``/infill``),
``ollama`` (``/api/generate`` with ``suffix``).  No torch here.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

from engine.errors import RemoteError

if TYPE_CHECKING:
    from engine.backends.remote.backend import RemoteBackend
    from engine.backends.remote.options import ClientOptions

#: every backend kind the CLI and the server settings accept; ``local`` is in-process
BACKENDS = ("local", "vllm", "openai", "llamacpp", "ollama")
REMOTE_KINDS = BACKENDS[1:]
#: kinds whose request must name a model
NEEDS_MODEL = ("openai", "ollama")


def api_key_from(env_var: str | None) -> str | None:
    """The API key from the named environment variable (never from a setting,
    so that it is not stored in editor configuration or logged with it)."""
    if not env_var:
        return None
    value = os.environ.get(env_var, "").strip()
    if not value:
        raise RemoteError(f"the API key variable {env_var} (--api-key-env / apiKeyEnv) is not set or empty")
    return value


def load_remote(kind: str, url: str | None, model: str | None, *, api_key_env: str | None = None,
                options: ClientOptions | None = None, context_tokens: int | None = None) -> RemoteBackend:
    """A backend for the server at ``url``; nothing is sent until the first request.
    ``context_tokens`` (the setting) is the served window, where the server's own word is not wanted."""
    from engine.backends.remote.http import HttpClient
    from engine.backends.remote.llamacpp import LlamaCppBackend
    from engine.backends.remote.ollama import OllamaBackend
    from engine.backends.remote.openai import OpenAICompletionsBackend, split_endpoint
    from engine.backends.remote.vllm import VllmBackend

    if kind not in REMOTE_KINDS:
        raise RemoteError(f"unknown backend {kind!r}: use one of {', '.join(BACKENDS)}")
    if not url:
        raise RemoteError(f"backend {kind} needs the server's URL (--url / url)")
    if kind in NEEDS_MODEL and not model:
        raise RemoteError(f"backend {kind} needs the served model's name (--model / model)")
    key = api_key_from(api_key_env)
    if kind in ("vllm", "openai"):
        base, path = split_endpoint(url)
        client = HttpClient(base, api_key=key, options=options)
        cls = VllmBackend if kind == "vllm" else OpenAICompletionsBackend
        return cls(client, model, context_tokens or 0, path=path)
    client = HttpClient(url, api_key=key, options=options)
    return (LlamaCppBackend if kind == "llamacpp" else OllamaBackend)(client, model, context_tokens or 0)
