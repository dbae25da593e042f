"""`vllm`: DiffusionGemma (or any model) served by vLLM's OpenAI-compatible server.

vLLM's ``/v1/completions`` rejects ``suffix`` with HTTP 400 "suffix is not
currently supported", so the suffix travels in the prompt: before the prefix,
in diffill's cross-file context format.

Why not a pinned canvas (checked 2026-11-30, see docs/PROTOCOL.md "Remote
backends"): vLLM PR 57250 (open, in no tagged release) adds ``vllm_xargs``
``diffusion_seed_canvas`` (a list of exactly ``canvas_length`` token ids),
``diffusion_pinned`` (a list of canvas positions held at their seed value),
``diffusion_max_steps`` and ``diffusion_canvas_length``.  Using them for
infill needs the suffix as the server's token ids (its ``/tokenize`` route)
laid into a canvas of the served length, and the middle then has a fixed
length; that is not built yet.  Released vLLM passes unknown ``vllm_xargs``
through unchecked, so a request carrying them would be answered as if the
suffix were not there: nothing is sent in them.

vLLM streams one committed canvas (up to 256 tokens for DiffusionGemma) per
server-sent event, so a draft arrives per canvas, not per denoising step.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.backends.remote.openai import OpenAICompletionsBackend
from engine.backends.remote.window import Fitted
from engine.cancellation import CancellationToken
from engine.context_format import format_context
from engine.types import InfillRequest

#: where the suffix goes in the prompt (a pseudo file name)
SUFFIX_LABEL = "(code after the cursor)"
CURSOR_LABEL = "(code before the cursor; continue it)"


def suffix_prompt(prefix: str, suffix: str, pieces: Sequence[tuple[str, str]] = ()) -> str:
    """A plain completion prompt that still shows the model the suffix (after
    other files' ``pieces``, nearest the prefix)."""
    if not suffix.strip():
        return format_context(pieces, CURSOR_LABEL) + prefix if pieces else prefix
    return format_context([*pieces, (SUFFIX_LABEL, suffix)], CURSOR_LABEL) + prefix


class VllmBackend(OpenAICompletionsBackend):
    kind = "vllm"
    #: how the suffix reaches the model (``diffill doctor`` shows it)
    infill_mode = "prompt carrying the suffix (pinned canvases are not used: docs/PROTOCOL.md)"

    def count_tokens(self, text: str, cancel: CancellationToken | None = None) -> int | None:
        """vLLM's ``POST /tokenize`` (``{"count"}``)."""
        body: dict[str, Any] = {"prompt": text, "add_special_tokens": False}
        if self.model_name:
            body["model"] = self.model_name
        return self.ask_tokenizer("/tokenize", body, lambda data: data.get("count") if isinstance(data, dict)
                                  else None, cancel)

    def body(self, request: InfillRequest, fitted: Fitted) -> dict[str, Any]:
        return {**self.common(request), "prompt": suffix_prompt(fitted.prefix, fitted.suffix, fitted.pieces)}
