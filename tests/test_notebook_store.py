"""The notebook store on its own: cell order, kinds, languages and bad changes."""
from __future__ import annotations

import pytest

from lsp_server.documents import DocumentStore
from lsp_server.documents.notebooks import Cell, NotebookStore

NB = "file:///nb.ipynb"


def store(*cells: tuple[str, bool, str, str]) -> NotebookStore:
    docs = DocumentStore()
    for uri, _, lang, text in cells:
        docs.open(uri, text, 1, lang)
    notebooks = NotebookStore(docs)
    notebooks.open(NB, 1, [Cell(uri, code) for uri, code, _, _ in cells])
    return notebooks


def test_only_code_cells_of_the_cursor_cells_language_are_context() -> None:
    nb = store(("c0", True, "python", "a = 1\n"), ("c1", False, "markdown", "# Title"),
               ("c2", True, "sql", "SELECT 1"), ("c3", True, "python", "b = a"), ("c4", True, "python", "print(b)"))
    ctx = nb.cell_context("c3")
    assert ctx is not None
    assert ctx.before == "# %%\na = 1\n\n# %%\n" and ctx.cells_before == ("c0",)
    assert ctx.after == "\n\n# %%\nprint(b)\n" and ctx.cells_after == ("c4",)
    assert nb.cell_context("not-a-cell") is None


def test_a_lone_cell_has_no_context_text() -> None:
    ctx = store(("c0", True, "python", "x = 1")).cell_context("c0")
    assert ctx is not None and ctx.before == "" and ctx.after == ""


def test_kind_changes_and_moves_change_the_context() -> None:
    nb = store(("c0", True, "python", "a = 1"), ("c1", True, "python", "b = 2"), ("c2", True, "python", "c = 3"))
    nb.set_kind("c0", False)  # turned into markdown
    assert nb.cell_context("c1").cells_before == ()
    removed = nb.splice(NB, 2, 2, 1, [])
    assert removed == ["c2"] and nb.cell_context("c1").cells_after == ()
    nb.splice(NB, 3, 0, 0, [Cell("c2", True)])
    assert nb.cell_context("c1").cells_before == ("c2",)
    assert nb.cells_of(NB) == ["c2", "c0", "c1"]


def test_bad_changes_are_refused_and_change_nothing() -> None:
    nb = store(("c0", True, "python", "a = 1"))
    with pytest.raises(ValueError, match="outside"):
        nb.splice(NB, 2, 1, 5, [])
    with pytest.raises(KeyError):
        nb.splice("file:///other.ipynb", 2, 0, 0, [])
    assert nb.cells_of(NB) == ["c0"]
    assert nb.close(NB) == ["c0"] and nb.cell_context("c0") is None and len(nb) == 0
