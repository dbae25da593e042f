"""Golden tests: a block stops where it leaves the cursor's indentation scope."""
import pytest

from lsp_server.postprocess import indentation_scope
from lsp_server.postprocess.context import FilterContext

CASES = [
    # the function body, not the next function
    ("def f(x):", "\n", "\n    y = x + 1\n    return y\n\ndef g():\n    pass",
     "\n    y = x + 1\n    return y"),
    # blank indented line inside a body: stop at the dedent
    ("def f(x):\n    ", "\n", "y = 1\n    return y\nprint(f(2))", "y = 1\n    return y"),
    # brace language: the closing brace at the opener's depth is kept, then stop
    ("function f() {", "\n", "\n  return 1;\n}\nfunction g() {}", "\n  return 1;\n}"),
    # nested deeper lines are fine; blank lines kept only between scoped lines
    ("for x in y:", "\n", "\n    if x:\n        go()\n\n    stop()\n\n\nafter()",
     "\n    if x:\n        go()\n\n    stop()"),
    # single line: untouched
    ("x = ", "\n", "1", "1"),
    # top level: nothing to leave
    ("", "", "a = 1\nb = 2", "a = 1\nb = 2"),
]


@pytest.mark.parametrize("prefix,suffix,middle,expected", CASES)
def test_indentation_scope(prefix, suffix, middle, expected):
    assert indentation_scope.apply(middle, FilterContext(prefix, suffix, "always")) == expected
