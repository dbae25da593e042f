"""Single-line vs multi-line beyond the golden cases (tests/golden/postprocess/line_mode-*)."""
from lsp_server.postprocess import line_mode
from lsp_server.postprocess.context import FilterContext


def test_blank_line_single_mode_skips_leading_newlines():
    ctx = FilterContext("if x:\n    ", "\n    pass\n", "never")
    assert line_mode.apply("\n\nreturn 1\nfoo", ctx) == "return 1"
