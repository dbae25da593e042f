"""Context windowing: how much text around the cursor the model sees.

The one place that sizes windows.  Two cuts, both keeping the lines nearest
the cursor (they matter most for infilling):

- by characters, in the server (``char_budgets``): it keeps cache keys,
  requests and the copies sent to the engine thread small, and an edit far
  from the cursor then leaves the key (and the cached completion) unchanged;
- by tokens, in the engine (``build_window``): the prompt is ``prefix +
  canvas + suffix``; when it does not fit the model's context we cut the prefix
  on the left and the suffix on the right at line boundaries.  The cursor's own
  line fragments are kept whole where possible and cut by tokens only if a
  single line is larger than its budget.

Every character budget here and in the server comes from one estimate,
``CHARS_PER_TOKEN``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")


class Tokenizer(Protocol[T]):
    """What windowing needs of a tokenizer: a model's (token ids), or
    :class:`CharChunks` where the model's tokenizer is on another machine."""

    def encode(self, text: str, add_special_tokens: bool = ...) -> list[T]: ...


#: Characters per token of source code: the one estimate every character budget
#: is derived from (a rough average of BPE tokenizers on code).
CHARS_PER_TOKEN = 4
#: A cut by characters that must never drop text a token budget would keep (the
#: pre-cut of huge inputs before tokenizing) assumes tokens up to this long:
#: runs of indentation and long identifiers make tokens far longer than average.
MAX_CHARS_PER_TOKEN = 3 * CHARS_PER_TOKEN
#: prompt window used at inference when neither the user nor the model says otherwise;
#: small by default because a bidirectional step re-reads the whole window
DEFAULT_CONTEXT_TOKENS = 384
#: characters the server keeps before / after the cursor when no token budget is set
DEFAULT_PREFIX_CHARS = 12_000
DEFAULT_SUFFIX_CHARS = 6_000


@dataclass(frozen=True)
class Window(Generic[T]):
    prefix_ids: list[T]
    suffix_ids: list[T]
    prefix_cut: bool  # lines were dropped on the left
    suffix_cut: bool  # lines were dropped on the right


def char_budgets(context_tokens: int | None) -> tuple[int, int]:
    """Characters (prefix, suffix) the server keeps around the cursor for a token budget.

    Twice the estimate for the whole budget, two thirds of it before the cursor:
    generous, because the engine then cuts exactly by tokens.
    """
    if not context_tokens:
        return DEFAULT_PREFIX_CHARS, DEFAULT_SUFFIX_CHARS
    total = max(context_tokens * CHARS_PER_TOKEN * 2, 2_000)
    return (total * 2) // 3, total // 3


#: most of the prompt (after the canvas) that text from other files may take:
#: the cursor's own file keeps the rest (training gave context a quarter of the row)
CONTEXT_SHARE = 0.5


def context_room(context_tokens: int, canvas: int) -> int:
    """Tokens of the prompt that context from other files may use."""
    return max(0, int((context_tokens - canvas) * CONTEXT_SHARE))


def split_budget(context_tokens: int, canvas: int, prefix_share: float = 0.75) -> tuple[int, int]:
    """Token budgets (prefix, suffix) for a prompt of ``context_tokens`` total."""
    room = max(0, context_tokens - canvas)
    prefix_budget = int(room * prefix_share)
    return prefix_budget, room - prefix_budget


def _encode(tok: Tokenizer[T], text: str) -> list[T]:
    return list(tok.encode(text, add_special_tokens=False)) if text else []


def _keep_tail_lines(tok: Tokenizer[T], text: str, budget: int) -> tuple[list[T], bool]:
    """The longest run of whole lines at the end of ``text`` fitting ``budget`` tokens."""
    if budget <= 0:
        return [], bool(text)
    text = text[-budget * MAX_CHARS_PER_TOKEN:] if len(text) > budget * MAX_CHARS_PER_TOKEN else text
    lines = text.splitlines(keepends=True)
    kept: list[str] = []
    used = 0
    for line in reversed(lines):
        n = len(_encode(tok, line))
        if used + n > budget:
            break
        kept.append(line)
        used += n
    if not kept and lines:  # the cursor line alone is too long: cut it by tokens
        ids = _encode(tok, lines[-1])
        return ids[-budget:], True
    ids = _encode(tok, "".join(reversed(kept)))
    while len(ids) > budget and len(kept) > 1:  # joint tokenization can differ slightly
        kept.pop()
        ids = _encode(tok, "".join(reversed(kept)))
    return ids[-budget:], len(kept) < len(lines) or len(ids) > budget


def _keep_head_lines(tok: Tokenizer[T], text: str, budget: int) -> tuple[list[T], bool]:
    """The longest run of whole lines at the start of ``text`` fitting ``budget`` tokens."""
    if budget <= 0:
        return [], bool(text)
    text = text[: budget * MAX_CHARS_PER_TOKEN]
    lines = text.splitlines(keepends=True)
    kept: list[str] = []
    used = 0
    for line in lines:
        n = len(_encode(tok, line))
        if used + n > budget:
            break
        kept.append(line)
        used += n
    if not kept and lines:
        ids = _encode(tok, lines[0])
        return ids[:budget], True
    ids = _encode(tok, "".join(kept))
    while len(ids) > budget and len(kept) > 1:
        kept.pop()
        ids = _encode(tok, "".join(kept))
    return ids[:budget], len(kept) < len(lines) or len(ids) > budget


def build_window(tok: Tokenizer[T], prefix: str, suffix: str, context_tokens: int, canvas: int) -> Window[T]:
    """Fit ``prefix`` and ``suffix`` around a canvas of ``canvas`` tokens in ``context_tokens``.

    Budget not used by one side goes to the other.
    """
    prefix_budget, suffix_budget = split_budget(context_tokens, canvas)
    room_chars = (prefix_budget + suffix_budget) * MAX_CHARS_PER_TOKEN
    full_prefix = _encode(tok, prefix) if len(prefix) <= room_chars else None
    full_suffix = _encode(tok, suffix) if len(suffix) <= room_chars else None
    if (full_prefix is not None and full_suffix is not None
            and len(full_prefix) + len(full_suffix) <= prefix_budget + suffix_budget):
        return Window(full_prefix, full_suffix, False, False)
    # give unused room of a short side to the other side
    if full_suffix is not None and len(full_suffix) < suffix_budget:
        prefix_budget += suffix_budget - len(full_suffix)
        suffix_budget = len(full_suffix)
    elif full_prefix is not None and len(full_prefix) < prefix_budget:
        suffix_budget += prefix_budget - len(full_prefix)
        prefix_budget = len(full_prefix)
    prefix_ids, prefix_cut = _keep_tail_lines(tok, prefix, prefix_budget)
    suffix_ids, suffix_cut = _keep_head_lines(tok, suffix, suffix_budget)
    return Window(prefix_ids, suffix_ids, prefix_cut, suffix_cut)


class CharChunks:
    """A tokenizer stand-in for a model served elsewhere: text in pieces of a
    fixed number of characters, each counted as one token.  With the pieces'
    length at or below the served tokenizer's characters per token (measured
    on the text by the server where it can, ``engine.backends.remote.window``),
    ``build_window`` cuts at the same line boundaries as for a local model and
    the joined pieces are the text that fits."""

    def __init__(self, chars_per_token: int) -> None:
        self.step = min(max(1, chars_per_token), MAX_CHARS_PER_TOKEN)

    def encode(self, text: str, add_special_tokens: bool = False) -> list[str]:
        step = self.step
        return [text[i:i + step] for i in range(0, len(text), step)]


def window_text(prefix: str, suffix: str, context_tokens: int, canvas: int,
                chars_per_token: int) -> tuple[str, str, bool, bool]:
    """``build_window`` on text (prefix, suffix, prefix cut, suffix cut), counting
    ``chars_per_token`` characters as one token (see :class:`CharChunks`)."""
    window = build_window(CharChunks(chars_per_token), prefix, suffix, context_tokens, canvas)
    return "".join(window.prefix_ids), "".join(window.suffix_ids), window.prefix_cut, window.suffix_cut
