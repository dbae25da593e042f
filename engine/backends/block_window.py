"""Which prompt tokens the encoder sees, chosen so the KV cache stays reusable.

A window that slid by one token per keystroke would shift every position and
make the cached keys useless.  Both cuts here move in coarse steps (a text
chunk, then a token chunk), so while the user types the window start stays put
and the prompt only grows at its end.
"""
from __future__ import annotations

from dataclasses import dataclass

from engine.window import CHARS_PER_TOKEN

#: characters per token assumed by the pre-cut before tokenizing: the shared
#: estimate with half again as margin (the tokens then decide; a larger pre-cut
#: would make the text start jump by whole ``CHAR_CHUNK``s more often)
PRECUT_CHARS_PER_TOKEN = CHARS_PER_TOKEN * 3 // 2

#: the text before the window is cut at multiples of this many characters
CHAR_CHUNK = 4096
#: the token window start moves in multiples of this many tokens (or of a
#: quarter of the budget when that is smaller: see ``token_chunk``)
TOKEN_CHUNK = 256


@dataclass(frozen=True)
class PromptWindow:
    ids: list[int]  # BOS (if any) + prefix tokens the encoder sees
    suffix_ids: list[int]  # first suffix tokens (at most ``canvas``)
    suffix_complete: bool  # the whole suffix fits: what follows it is end-of-text


def _encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


def token_chunk(budget: int) -> int:
    """How far the window start jumps at a time: ``TOKEN_CHUNK``, but never more
    than a quarter of the budget, so that at least three quarters of it is kept
    (a 256-token step on a 100-token budget would drop the whole prefix)."""
    return max(1, min(TOKEN_CHUNK, int(budget) // 4))


def prefix_ids(tokenizer, prefix: str, budget: int, bos_id: int | None) -> list[int]:
    """BOS + the last ``budget`` tokens of ``prefix`` or a few less (at least
    three quarters of the budget when the prefix is long enough), with a start
    that moves in chunks."""
    budget = max(int(budget) - (1 if bos_id is not None else 0), 1)
    start = 0
    limit = budget * PRECUT_CHARS_PER_TOKEN
    if len(prefix) > limit:
        start = ((len(prefix) - limit) // CHAR_CHUNK) * CHAR_CHUNK
        newline = prefix.find("\n", start)
        start = newline + 1 if 0 <= newline < len(prefix) - 1 else start
    ids = _encode(tokenizer, prefix[start:])
    if len(ids) > budget:
        chunk = token_chunk(budget)
        drop = -(-(len(ids) - budget) // chunk) * chunk
        ids = ids[drop:]
    return ([bos_id] if bos_id is not None else []) + ids


def suffix_ids(tokenizer, suffix: str, canvas: int) -> tuple[list[int], bool]:
    """The first ``canvas`` suffix tokens, and whether that is all of it."""
    limit = canvas * PRECUT_CHARS_PER_TOKEN * 2
    ids = _encode(tokenizer, suffix[:limit])
    complete = len(suffix) <= limit and len(ids) <= canvas
    return ids[:canvas], complete


def build_window(tokenizer, prefix: str, suffix: str, *, prompt_budget: int, canvas: int,
                 bos_id: int | None) -> PromptWindow:
    sids, complete = suffix_ids(tokenizer, suffix, canvas)
    return PromptWindow(ids=prefix_ids(tokenizer, prefix, prompt_budget, bos_id), suffix_ids=sids,
                        suffix_complete=complete)
