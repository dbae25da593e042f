"""The word a completion item replaces (lsp_server/features/completion.py)."""
from __future__ import annotations

import re
import time

import pytest

from lsp_server.features.completion import word_before


@pytest.mark.parametrize("text,end,word", [
    ("    ret", 7, "ret"),
    ("x = foo_bar", 11, "foo_bar"),
    ("a.b$c", 5, "b$c"),
    ("déjà", 4, "déjà"),
    ("f(x) ", 5, ""),
    ("", 0, ""),
    ("abc\rdef", 7, "def"),  # "\r" ends a line too
    ("abc def", 3, "abc"),
])
def test_word_before(text: str, end: int, word: str):
    assert word_before(text, end) == word


def test_same_words_as_the_regex_it_replaced():
    regex = re.compile(r"[\w$]*\Z")
    text = "α_1 $x\t9z-é\u2028ok\U0001D518y"
    for end in range(len(text) + 1):
        assert word_before(text, end) == regex.search(text, 0, end).group(0)


def test_cost_is_the_word_not_the_line():
    # a minified file: one 20 MB line; the old search scanned all of it per request (~1 s)
    text = "a+" * 10_000_000 + "tail"
    start = time.perf_counter()
    for _ in range(100):
        assert word_before(text, len(text)) == "tail"
    assert time.perf_counter() - start < 0.5
