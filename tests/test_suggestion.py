"""A suggestion as shown (lsp_server.suggestion): the tokens it shows and one confidence."""
from __future__ import annotations

import math

import pytest

from lsp_server.suggestion import Span, Suggestion, measure, shown


def test_the_shown_stretch_keeps_only_its_tokens():
    # tokens: "\n" | "  x " | "= 1" | "\n": the line mode drops the leading break and cuts at the next
    s = shown("\n  x = 1\ny", "  x = 1", [0.9, 0.5, 0.8, 0.3], [1, 5, 8, 9])
    assert s.spans == (Span(0, 4, 0.5), Span(4, 7, 0.8)) and s.probabilities == (0.5, 0.8)
    assert s.confidence == pytest.approx(math.sqrt(0.5 * 0.8))


def test_a_cut_inside_a_token_keeps_that_token():
    s = shown("abc(def)", "abc(d", [0.9, 0.2, 0.4], [3, 5, 8])
    assert s.spans == (Span(0, 3, 0.9), Span(3, 5, 0.2)) and s.probabilities == (0.9, 0.2)


def test_without_token_positions_every_token_counts_and_nothing_is_shaded():
    s = shown("abc", "abc", [0.5, 0.5], [])
    assert s.probabilities == (0.5, 0.5) and s.spans == () and s.confidence == pytest.approx(0.5)
    assert shown("abc", "zzz", [0.5], [3]).spans == ()  # not a stretch of the middle
    assert shown("abc", "abc", [], []).confidence is None  # a server that reports no probabilities
    assert shown("abc", "", [0.5], [3]) == Suggestion("")


def test_the_measures():
    assert measure([0.5, 0.8]) == pytest.approx(math.sqrt(0.4))
    assert measure([0.5, 0.8], "min") == 0.5
    assert measure([]) is None
    with pytest.raises(ValueError, match="measure"):
        measure([0.5], "max")


def test_as_json_rounds_for_the_editor():
    s = Suggestion("ab", (0.123456, 0.5), (Span(0, 1, 0.123456), Span(1, 2, 0.5)))
    assert s.as_json() == {"confidence": round(math.sqrt(0.123456 * 0.5), 4),
                           "spans": [[0, 1, 0.1235], [1, 2, 0.5]]}
