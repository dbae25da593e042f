"""Golden tests: the end of the middle must not repeat the start of the suffix."""
import pytest

from lsp_server.postprocess import trim_suffix_overlap
from lsp_server.postprocess.context import FilterContext

CASES = [
    ("print(", ")\n", "x)", "x"),                      # closing paren already there
    ("f(", "]);\n", "a[0]);", "a[0"),                   # punctuation run
    ("x = ", "\nreturn x\n", "1\nreturn x", "1"),        # repeated next line (>= 4 chars)
    ("f(", "a)\n", "b, a", "b, a"),                      # one-letter coincidence is kept
    ("x = ", "\n", "1\n", "1"),                          # newline the suffix has
    ("call(", "  )\n", "arg)", "arg"),                   # suffix starts with spaces
    ("x = ", "", "1", "1"),                              # no suffix
    ("(", ")", ")", ""),                                 # the whole middle is the overlap
]


@pytest.mark.parametrize("prefix,suffix,middle,expected", CASES)
def test_trim_suffix_overlap(prefix, suffix, middle, expected):
    assert trim_suffix_overlap.apply(middle, FilterContext(prefix, suffix)) == expected
