"""Golden cases for the post-processing filters and the whole pipeline, one file per case.

Each ``tests/golden/postprocess/*.toml`` names a filter (or ``pipeline``), the
document with the cursor marked by ``<|cursor|>``, the model's raw middle and
the middle expected after the filter.  Add a case by adding a file.
"""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from lsp_server.postprocess import (
    balance_brackets,
    drop_empty,
    indentation_scope,
    line_mode,
    trim_suffix_overlap,
    undecodable,
)
from lsp_server.postprocess.context import FilterContext
from lsp_server.postprocess.pipeline import postprocess

GOLDEN = Path(__file__).parent / "golden" / "postprocess"
CURSOR = "<|cursor|>"
FILTERS = {
    "pipeline": postprocess,
    "line_mode": line_mode.apply,
    "indentation_scope": indentation_scope.apply,
    "trim_suffix_overlap": trim_suffix_overlap.apply,
    "balance_brackets": balance_brackets.apply,
    "drop_empty": drop_empty.apply,
    "undecodable": undecodable.apply,
}
CASES = sorted(GOLDEN.glob("*.toml"))


def test_there_are_golden_cases_for_every_filter():
    named = {tomllib.loads(p.read_text())["filter"] for p in CASES}
    assert named == set(FILTERS)


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden_case(path: Path):
    case = tomllib.loads(path.read_text())
    assert case["document"].count(CURSOR) == 1, f"{path.name}: mark the cursor exactly once"
    prefix, suffix = case["document"].split(CURSOR)
    ctx = FilterContext(prefix, suffix, case.get("multiline", "auto"), case.get("language"))
    assert FILTERS[case["filter"]](case["middle"], ctx) == case["expected"]
