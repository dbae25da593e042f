"""Golden tests: single-line vs multi-line from the cursor context."""
import pytest

from lsp_server.postprocess import line_mode
from lsp_server.postprocess.context import FilterContext

CASES = [
    # (prefix, suffix, mode, middle, expected)
    ("x = foo(", ")\n", "auto", "a, b\ny = 2", "a, b"),                      # text after cursor: one line
    ("def f(x):", "\n", "auto", "\n    return x\n", "\n    return x\n"),     # block opener at EOL: block
    ("def f(x):\n    ", "\n", "auto", "y = x\n    return y", "y = x\n    return y"),  # blank line: block
    ("total = ", "\n", "auto", "a + b\nprint(total)", "a + b"),             # mid-statement: one line
    ("x = foo(", ")\n", "always", "a,\n b", "a,\n b"),
    ("def f(x):", "\n", "never", "\n    return x", ""),  # never: first line only (empty here)
    ("x = ", "", "auto", "1\r\ny", "1"),
]


@pytest.mark.parametrize("prefix,suffix,mode,middle,expected", CASES)
def test_line_mode(prefix, suffix, mode, middle, expected):
    assert line_mode.apply(middle, FilterContext(prefix, suffix, mode)) == expected


def test_blank_line_single_mode_skips_leading_newlines():
    ctx = FilterContext("if x:\n    ", "\n    pass\n", "never")
    assert line_mode.apply("\n\nreturn 1\nfoo", ctx) == "return 1"
