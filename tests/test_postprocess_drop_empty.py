"""Golden tests: empty or whitespace-only middles become ""."""
import pytest

from lsp_server.postprocess import drop_empty
from lsp_server.postprocess.context import FilterContext


@pytest.mark.parametrize("middle,expected", [("", ""), ("   ", ""), ("\n\t\n", ""), (" x ", " x ")])
def test_drop_empty(middle, expected):
    assert drop_empty.apply(middle, FilterContext("a", "b")) == expected
