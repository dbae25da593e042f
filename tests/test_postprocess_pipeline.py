"""The pipeline's filter order (its golden cases are in tests/golden/postprocess/)."""
from lsp_server.postprocess.pipeline import FILTERS


def test_filter_order():
    assert [name for name, _ in FILTERS] == [
        "undecodable", "line_mode", "indentation_scope", "trim_suffix_overlap", "balance_brackets", "drop_empty"]


def test_a_paren_in_a_suffix_comment_does_not_cut_the_line() -> None:
    """Issue 26, defect 2: the exact line the model wrote stays whole; the ``)`` in the comment is text."""
    from lsp_server.postprocess.context import FilterContext as Ctx
    from lsp_server.postprocess.pipeline import postprocess

    ctx = Ctx("def connect(host, port,\n", "    return (host, port)\n\n# notes:\n# 1) host is a name\n",
              "auto", "python")
    assert postprocess("            timeout=None):", ctx) == "            timeout=None):"
