"""`vllm`: DiffusionGemma (or any model) served by vLLM's OpenAI-compatible server.

vLLM's ``/v1/completions`` rejects ``suffix`` with HTTP 400 "suffix is not
currently supported", so the suffix travels one of two other ways:

* pinned canvas: newer vLLM builds (PR 57250, not confirmed in a tagged
  release) take ``vllm_xargs`` ``diffusion_seed_canvas`` / ``diffusion_pinned``
  / ``diffusion_canvas_length`` / ``diffusion_max_steps``: the canvas is seeded
  with the suffix and those positions stay fixed: true bidirectional infill;
* a prompt that carries the suffix (before the prefix, in diffill's
  cross-file context format) where the server refuses those fields.

Which one a server takes is found out once, on the first request: a 400 on the
pinned request switches this backend to the prompt for good.  A server that
silently ignores unknown ``vllm_xargs`` cannot be told apart from one that
honours them (vLLM passes unknown custom arguments through unchecked).

vLLM streams one committed canvas (up to 256 tokens for DiffusionGemma) per
server-sent event, so a draft arrives per canvas, not per denoising step.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from engine.backends.remote.openai import OpenAICompletionsBackend
from engine.cancellation import CancellationToken
from engine.context_format import format_context
from engine.errors import RemoteError
from engine.types import InfillRequest

#: where the suffix goes in the fallback prompt (a pseudo file name)
SUFFIX_LABEL = "(code after the cursor)"
CURSOR_LABEL = "(code before the cursor; continue it)"


def suffix_prompt(prefix: str, suffix: str) -> str:
    """A plain completion prompt that still shows the model the suffix."""
    if not suffix.strip():
        return prefix
    return format_context([(SUFFIX_LABEL, suffix)], CURSOR_LABEL) + prefix


class VllmBackend(OpenAICompletionsBackend):
    kind = "vllm"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: None until the first request tells whether the server takes pinned canvases
        self.pinned: bool | None = None
        self._detect = threading.Lock()

    def body(self, request: InfillRequest) -> dict[str, Any]:
        if self.pinned is False:
            return self.prompt_body(request)
        return self.pinned_body(request)

    def pinned_body(self, request: InfillRequest) -> dict[str, Any]:
        xargs: dict[str, Any] = {"diffusion_seed_canvas": request.suffix, "diffusion_pinned": True,
                                 "diffusion_canvas_length": request.max_new_tokens}
        if request.steps is not None:
            xargs["diffusion_max_steps"] = request.steps
        return {**self.common(request), "prompt": request.prefix, "vllm_xargs": xargs}

    def prompt_body(self, request: InfillRequest) -> dict[str, Any]:
        return {**self.common(request), "prompt": suffix_prompt(request.prefix, request.suffix)}

    def send(self, request: InfillRequest, cancel: CancellationToken) -> Iterator[Any]:
        probed = self._probe(request, cancel) if self.pinned is None else None
        if probed is None:
            yield from self.client.events("POST", self.path, self.body(request), self.framing, cancel)
            return
        events, first = probed
        if first is not None:
            yield first
        yield from events

    def _probe(self, request: InfillRequest,
               cancel: CancellationToken) -> tuple[Iterator[Any], Any] | None:
        """Find out, on this request, whether the server takes pinned canvases.

        Returns the open response and its first event, or None when another
        request found out while this one waited (then send normally)."""
        while not self._detect.acquire(timeout=0.01):  # stays cancellable while another request probes
            cancel.raise_if_cancelled()
        try:
            if self.pinned is not None:
                return None
            events = self.client.events("POST", self.path, self.pinned_body(request), self.framing, cancel)
            try:
                first = next(events, None)
            except RemoteError as exc:
                if exc.status != 400:
                    raise
                events = self.client.events("POST", self.path, self.prompt_body(request), self.framing, cancel)
                first = next(events, None)
                self.pinned = False
                return events, first
            self.pinned = True
            return events, first
        finally:
            self._detect.release()
