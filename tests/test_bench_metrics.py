"""Golden values for the benchmark metrics."""
from __future__ import annotations

import pytest

from engine.bench import metrics


def test_exact_match_ignores_trailing_space_and_blank_edges_but_not_indentation() -> None:
    assert metrics.exact_match("    return x  \n\n", "    return x\n")
    assert metrics.exact_match("\n  a\r\n  b\n", "  a\n  b")
    assert not metrics.exact_match("return x", "    return x")
    assert not metrics.exact_match("return x", "return y")
    assert metrics.exact_match("", "\n")


@pytest.mark.parametrize(("a", "b", "distance"), [
    ("kitten", "sitting", 3), ("", "abc", 3), ("abc", "", 3), ("abc", "abc", 0),
    ("flaw", "lawn", 2), ("gumbo", "gambol", 2),
])
def test_levenshtein(a: str, b: str, distance: int) -> None:
    assert metrics.levenshtein(a, b) == distance


def test_edit_similarity_golden() -> None:
    assert metrics.edit_similarity("kitten", "sitting") == pytest.approx(1 - 3 / 7)
    assert metrics.edit_similarity("same", "same") == 1.0
    assert metrics.edit_similarity("", "") == 1.0
    assert metrics.edit_similarity("", "abcd") == 0.0
    assert metrics.edit_similarity("x = 1  \n", "x = 1") == 1.0


def test_percentile_matches_numpy_linear() -> None:
    values = [15.0, 20.0, 35.0, 40.0, 50.0]
    assert metrics.percentile(values, 50) == 35.0
    assert metrics.percentile(values, 95) == pytest.approx(48.0)
    assert metrics.percentile(values, 0) == 15.0
    assert metrics.percentile(values, 100) == 50.0
    assert metrics.percentile([1.0, 2.0], 50) == 1.5
    assert metrics.percentile([7.0], 95) == 7.0
    assert metrics.percentile([], 50) is None
    with pytest.raises(ValueError):
        metrics.percentile([1.0], 101)


def test_aggregates() -> None:
    assert metrics.percent([True, False, True, True]) == 75.0
    assert metrics.percent([]) is None
    assert metrics.mean([1.0, 2.0, 6.0]) == 3.0
    assert metrics.ratio(9, 3) == 3.0
    assert metrics.ratio(1, 0) is None
