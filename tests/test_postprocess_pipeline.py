"""The pipeline's filter order (its golden cases are in tests/golden/postprocess/)."""
from lsp_server.postprocess.pipeline import FILTERS


def test_filter_order():
    assert [name for name, _ in FILTERS] == [
        "undecodable", "line_mode", "indentation_scope", "trim_suffix_overlap", "balance_brackets", "drop_empty"]
