"""What every remote backend shares: turning a server's stream of text pieces
into the engine's drafts and result, so that the language server and the CLI
use a remote engine exactly like the in-process one.

A kind (vllm, openai, llamacpp, ollama) says only how to build its request
body and how to read one streamed event (:class:`Piece`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from engine.backends.base import DraftGenerator
from engine.backends.remote.http import Framing, HttpClient
from engine.cancellation import CancellationToken
from engine.context_format import estimate_tokens, prompt_context
from engine.errors import RemoteError
from engine.types import Draft, InfillRequest, InfillResult
from engine.window import DEFAULT_CONTEXT_TOKENS


@dataclass(frozen=True)
class Piece:
    """One streamed event, read: new text, whether it was the last, tokens so far."""

    text: str
    done: bool
    tokens: int | None = None


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
        self.context_tokens = context_tokens
        self.model_path = f"{self.kind}:{model or '(server default)'}"
        self.name = self.kind

    @property
    def window_tokens(self) -> int:
        """The served model's window as far as known (the shared default otherwise)."""
        return self.context_tokens or DEFAULT_CONTEXT_TOKENS

    def prompt_prefix(self, request: InfillRequest) -> str:
        """The prefix with other files' pieces before it (file-path headers,
        ``engine.context_format``), cut to the shared token estimate: how a
        server that takes text sees repository context."""
        return prompt_context(request, estimate_tokens, self.window_tokens, request.max_new_tokens) + request.prefix

    def body(self, request: InfillRequest) -> dict[str, Any]:
        """The JSON request body; it must carry both prefix and suffix."""
        raise NotImplementedError

    def piece(self, event: Any) -> Piece:
        """Read one streamed event."""
        raise NotImplementedError

    def run(self, request: InfillRequest, cancel: CancellationToken) -> DraftGenerator:
        """Stream the server's answer as drafts: one per event that adds text."""
        start = time.perf_counter()
        middle, tokens, step, first_ms = "", 0, 0, None
        finished = False
        for event in self.send(request, cancel):
            if finished:
                continue
            piece = self.piece(event)
            if piece.text:
                if first_ms is None:
                    first_ms = (time.perf_counter() - start) * 1000.0
                middle += piece.text
                tokens = piece.tokens if piece.tokens is not None else tokens + 1
                step += 1
                if not piece.done:
                    yield Draft(step=step, steps=request.max_new_tokens, text=middle)
            if piece.done:
                finished = True  # read on: the body ends right after, and the connection is reused
        if not finished:
            raise RemoteError(f"the server at {self.client.base_url} ended the answer without finishing it "
                              "(stream dropped)")
        total = (time.perf_counter() - start) * 1000.0
        yield Draft(step=max(step, 1), steps=max(step, 1), text=middle, done=True)
        timings = {"total_ms": total, "first_piece_ms": first_ms if first_ms is not None else total}
        return InfillResult(middle=middle, forwards=max(step, 1), tokens=tokens, timings=timings)

    def send(self, request: InfillRequest, cancel: CancellationToken):
        """The response events for ``request`` (a kind may retry differently)."""
        return self.client.events("POST", self.path, self.body(request), self.framing, cancel)

    def served_models(self, cancel: CancellationToken | None = None) -> list[dict[str, Any]]:
        """The models the server offers, as ``{"id", "context_tokens"?}`` (for doctor)."""
        data = self.client.get_json("/v1/models", cancel)
        out = []
        for item in data.get("data", []) if isinstance(data, dict) else []:
            entry: dict[str, Any] = {"id": item.get("id")}
            if item.get("max_model_len"):
                entry["context_tokens"] = item["max_model_len"]
            out.append(entry)
        return out
