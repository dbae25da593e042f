"""Golden tests: brackets consistent with the prefix and suffix."""
import pytest

from lsp_server.postprocess import balance_brackets
from lsp_server.postprocess.context import FilterContext

CASES = [
    ("print(", ")\n", "x) + y", "x"),                   # the suffix closes print(
    ("print(", "\n", "x) + y", "x) + y"),                # nobody closes it: the middle may
    ("x = ", "\n", "a) + b", "a"),                       # closer with no opener
    ("f(", ")\n", "g(1), h[2]", "g(1), h[2]"),           # balanced inside the middle
    ("f(", ")\n", "g(1]", "g(1"),                        # mismatched closer
    ("if (a && (b", "))\n", "|| c))", "|| c"),            # both prefix parens owned by suffix
    ("d = {'a': [1", "\n", ", 2]}", ", 2]}"),             # closes prefix brackets legally
]


@pytest.mark.parametrize("prefix,suffix,middle,expected", CASES)
def test_balance_brackets(prefix, suffix, middle, expected):
    assert balance_brackets.apply(middle, FilterContext(prefix, suffix)) == expected
