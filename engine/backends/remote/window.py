"""Keeping a remote prompt within the context the server serves.

A served model's tokenizer is on the server, so the prompt is sized in two
steps.  A token is at least one byte of text (byte-level BPE and byte-fallback
tokenizers alike), so a prompt of no more UTF-8 bytes than the room is sent as
it is, without asking the server anything: most requests near the top of a
small file.  A larger one is measured once by the server's own tokenizer
where it has one (llama-server and vLLM ``/tokenize``), which gives this
text's characters per token; without one, the shared estimate less a margin.
Then the same windowing as for a local model (``engine.window.build_window``,
whole lines nearest the cursor) cuts the cursor's file, after other files'
pieces took at most their share (``engine.window.context_room``).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from engine.context_format import fit_pieces, format_context
from engine.errors import InputError
from engine.types import InfillRequest
from engine.window import CHARS_PER_TOKEN, context_room, window_text

#: tokens kept free for what the server adds around the text (FIM markers, file separators, BOS, repo name)
PROMPT_RESERVE_TOKENS = 16
#: the cut aims this far below the measured characters per token: the lines kept may tokenize denser
MARGIN = 0.85
#: characters per token assumed without the server's tokenizer: below the shared estimate, on purpose
#: (a prompt that overflows is refused with HTTP 400; a slightly short one costs little)
UNMEASURED_CHARS_PER_TOKEN = CHARS_PER_TOKEN - 1

#: the server's token count for a text, or None when it cannot tell
ServerCount = Callable[[str], "int | None"]


@dataclass(frozen=True)
class Fitted:
    """What of a request goes to the server."""

    prefix: str
    suffix: str
    pieces: list[tuple[str, str]]  # other files' (path, text), most relevant last
    cut: bool  # lines of the cursor's file were left out
    chars_per_token: int  # what the cut assumed (0: nothing needed cutting)


def fit(request: InfillRequest, window: int, canvas: int, server_count: ServerCount | None = None) -> Fitted:
    """The request's prefix, suffix and pieces within ``window`` tokens, with
    ``canvas`` tokens left to generate.  Raises ``InputError`` when the window
    leaves no room for a prompt at all."""
    room = window - canvas - PROMPT_RESERVE_TOKENS
    if room < PROMPT_RESERVE_TOKENS:
        raise InputError(f"the server's context ({window} tokens) leaves no room for a prompt beside "
                         f"{canvas} tokens to generate: lower maxNewTokens (--max-new-tokens) or serve a "
                         "longer context")
    everything = [(p.path, p.text) for p in request.context if p.text.strip()]
    whole = request.prefix + request.suffix + (format_context(everything, request.path) if everything else "")
    if len(whole.encode("utf-8", "surrogatepass")) <= room:
        return Fitted(request.prefix, request.suffix, everything, False, 0)
    measured = server_count(whole) if server_count is not None else None
    if measured:
        step = max(1, int(len(whole) / measured * MARGIN))
    else:
        step = UNMEASURED_CHARS_PER_TOKEN

    def count(text: str) -> int:
        return -(-len(text) // step)

    pieces = fit_pieces(request.context, request.path, count, context_room(window, canvas))
    file_room = room - (count(format_context(pieces, request.path)) if pieces else 0)
    prefix, suffix, prefix_cut, suffix_cut = window_text(request.prefix, request.suffix, file_room, 0, step)
    return Fitted(prefix, suffix, pieces, prefix_cut or suffix_cut, step)
