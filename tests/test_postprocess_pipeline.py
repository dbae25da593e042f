"""Golden tests for the whole post-processing pipeline (filters in order)."""
import pytest

from lsp_server.postprocess.context import FilterContext
from lsp_server.postprocess.pipeline import FILTERS, postprocess

CASES = [
    # one line inside a call whose closer is in the suffix
    ("value = compute(", ")\n", "auto", "a, b)\nnext_line()", "a, b"),
    # block after a def, cut at the next top-level def
    ("def area(r):", "\n", "auto", "\n    return 3.14 * r * r\n\ndef other():\n    pass",
     "\n    return 3.14 * r * r"),
    # model repeated the line that follows the cursor
    ("def f():\n    ", "\n    return x\n", "auto", "x = 1\n    return x", "x = 1"),
    # only whitespace survives -> nothing
    ("x = 1", "\ny = 2\n", "auto", "\n  \n", ""),
    # never: one line even after a block opener
    ("if ok:", "\n", "never", " # done\n    go()", " # done"),
]


@pytest.mark.parametrize("prefix,suffix,mode,middle,expected", CASES)
def test_pipeline(prefix, suffix, mode, middle, expected):
    assert postprocess(middle, FilterContext(prefix, suffix, mode)) == expected


def test_filter_order():
    assert [name for name, _ in FILTERS] == [
        "line_mode", "indentation_scope", "trim_suffix_overlap", "balance_brackets", "drop_empty"]
