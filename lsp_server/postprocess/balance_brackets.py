"""Keep the middle's brackets consistent with the prefix and the suffix.

Scanning prefix + middle with a bracket stack: the middle is cut before the
first closing bracket that
  * has no opener at all (it would unbalance the file), or
  * closes a bracket opened in the prefix that the suffix closes already
    (``print(`` + middle ``x)`` + suffix ``)``: the ``)`` is the suffix's).

Brackets inside comments and strings do not count: where tree-sitter has a
grammar for the language (``lsp_server.context.languages``), the text as it
would read after the insertion (prefix tail + middle + suffix head) is parsed,
and only a bracket that is a token of the code is counted (a ``)`` in
``# 1) host is a name`` is part of a comment node).  Without a grammar, every
bracket counts (the old heuristic, like most editors').
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from lsp_server.postprocess.context import FilterContext

PAIRS = {")": "(", "]": "[", "}": "{"}
OPENERS = set(PAIRS.values())
#: how much of the prefix is scanned for open brackets
PREFIX_SCAN_CHARS = 4_000
#: how much of the suffix is scanned for the closers it applies to the prefix's brackets
SUFFIX_SCAN_CHARS = 4_000
#: only brackets matter to the scans: finding them in C first makes a keystroke's
#: scan of 4,000 prefix characters about 6x cheaper than a Python loop over all of them
_BRACKET_BYTES = re.compile(rb"[()\[\]{}]")

#: whether the bracket at (byte offset in the parsed text) is code
IsCode = Callable[[int], bool]


def _open_stack(brackets: Iterator[str]) -> list[str]:
    stack: list[str] = []
    for ch in brackets:
        if ch in OPENERS:
            stack.append(ch)
        elif ch in PAIRS and stack and stack[-1] == PAIRS[ch]:
            stack.pop()
    return stack


def _suffix_closes(brackets: Iterator[str], depth: int) -> list[str]:
    """Closers the suffix applies to brackets open before it, innermost first."""
    closes: list[str] = []
    if depth <= 0:
        return closes
    own = 0
    for ch in brackets:
        if ch in OPENERS:
            own += 1
        elif ch in PAIRS:
            if own:
                own -= 1
            else:
                closes.append(ch)
                if len(closes) >= depth:
                    break
    return closes


def _code_checker(text: bytes, language: str | None) -> IsCode | None:
    """Tells whether the bracket byte at an offset of ``text`` is a token of the
    code rather than part of a comment or string (None: no grammar for the language)."""
    if not language:
        return None
    from lsp_server.context.languages import grammar_for, parser_for

    grammar = grammar_for(None, language)
    parser = parser_for(grammar) if grammar else None
    if parser is None:
        return None
    root = parser.parse(text).root_node

    def is_code(offset: int) -> bool:
        # the smallest node holding the byte: the bracket's own (anonymous) token in code; a
        # named leaf (comment, string content, ...) when the bracket is text inside it
        node = root.descendant_for_byte_range(offset, offset + 1)
        return node is None or not node.is_named or node.type == "ERROR"

    return is_code


def apply(middle: str, ctx: FilterContext) -> str:
    prefix = ctx.prefix[-PREFIX_SCAN_CHARS:]
    if len(prefix) < len(ctx.prefix) and "\n" in prefix:
        prefix = prefix[prefix.index("\n") + 1:]  # parse from a line's start, not mid-token
    suffix = ctx.suffix[:SUFFIX_SCAN_CHARS]
    head, body, tail = prefix.encode("utf-8", "surrogatepass"), middle.encode("utf-8", "surrogatepass"), \
        suffix.encode("utf-8", "surrogatepass")
    is_code = _code_checker(head + body + tail, ctx.language)

    def brackets(data: bytes, base: int) -> Iterator[tuple[int, str]]:
        """(offset in ``data``, bracket) of the brackets that count; ``base`` is
        where ``data`` starts in the parsed text.  Brackets are ASCII: they never
        occur inside a multi-byte UTF-8 sequence, so scanning bytes is exact."""
        for m in _BRACKET_BYTES.finditer(data):
            if is_code is None or is_code(base + m.start()):
                yield m.start(), chr(data[m.start()])

    prefix_stack = _open_stack(ch for _, ch in brackets(head, 0))
    claimed = _suffix_closes((ch for _, ch in brackets(tail, len(head) + len(body))), len(prefix_stack))
    # prefix openers the suffix closes (innermost first) are off-limits to the middle
    reserved = 0
    for opener, closer in zip(reversed(prefix_stack), claimed):
        if PAIRS[closer] != opener:
            break
        reserved += 1
    available = len(prefix_stack) - reserved
    stack = list(prefix_stack[:available])
    own: list[str] = []
    for at, ch in brackets(body, len(head)):
        if ch in OPENERS:
            own.append(ch)
            continue
        if own:
            if own[-1] == PAIRS[ch]:
                own.pop()
                continue
        elif stack and stack[-1] == PAIRS[ch]:
            stack.pop()
            continue
        return body[:at].decode("utf-8", "surrogatepass").rstrip(" \t")
    return middle
