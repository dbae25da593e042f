"""Open notebooks: the order and kind of their cells, so that a completion in
one cell sees the code cells above it as prefix and those below as suffix.

The cells' texts are ordinary documents in the ``DocumentStore`` (one per cell
URI, each with its own version, so a fill's edit stays version-guarded per
cell); this module keeps only the structure.  Code cells are joined in the
jupytext "percent" layout (``# %%`` before each cell), which is how notebooks
are written as Python files, so the bundled model has seen that separator in
training.  Markdown cells and code cells in another language than the cursor's
cell are left out.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from lsp_server.documents.store import Document, DocumentStore

#: what starts every code cell in the text the model sees (jupytext percent format)
CELL_MARKER = "# %%\n"


@dataclass
class Cell:
    """One cell of a notebook: its text document's URI and whether it is code."""

    uri: str
    code: bool


@dataclass
class Notebook:
    uri: str
    version: int
    cells: list[Cell] = field(default_factory=list)


@dataclass(frozen=True)
class CellContext:
    """Text from the other cells around the cursor's cell, and which cells it came from."""

    before: str
    after: str
    cells_before: tuple[str, ...]
    cells_after: tuple[str, ...]


class NotebookStore:
    """Open notebooks by URI, and the notebook each cell URI belongs to."""

    def __init__(self, documents: DocumentStore) -> None:
        self.documents = documents
        self._notebooks: dict[str, Notebook] = {}
        self._owner: dict[str, str] = {}  # cell uri -> notebook uri

    def open(self, uri: str, version: int, cells: list[Cell]) -> None:
        self.close(uri)
        self._notebooks[uri] = Notebook(uri, version, list(cells))
        for cell in cells:
            self._owner[cell.uri] = uri

    def splice(self, uri: str, version: int, start: int, delete_count: int, cells: list[Cell]) -> list[str]:
        """Replace ``delete_count`` cells at ``start`` by ``cells``; the removed cells' URIs."""
        nb = self._notebooks.get(uri)
        if nb is None:
            raise KeyError(f"unknown notebook: {uri}")
        if not (0 <= start <= len(nb.cells) and 0 <= delete_count <= len(nb.cells) - start):
            raise ValueError(f"cell change {start}+{delete_count} outside a notebook of {len(nb.cells)} cells")
        removed = nb.cells[start:start + delete_count]
        nb.cells[start:start + delete_count] = cells
        nb.version = version
        for cell in removed:
            self._owner.pop(cell.uri, None)
        for cell in cells:
            self._owner[cell.uri] = uri
        return [c.uri for c in removed]

    def set_kind(self, cell_uri: str, code: bool) -> None:
        nb = self.notebook_of(cell_uri)
        for cell in nb.cells if nb else []:
            if cell.uri == cell_uri:
                cell.code = code

    def set_version(self, uri: str, version: int) -> None:
        if uri in self._notebooks:
            self._notebooks[uri].version = version

    def close(self, uri: str) -> list[str]:
        """Forget a notebook; the URIs of its cells."""
        nb = self._notebooks.pop(uri, None)
        if nb is None:
            return []
        for cell in nb.cells:
            self._owner.pop(cell.uri, None)
        return [c.uri for c in nb.cells]

    def cells_of(self, uri: str) -> list[str]:
        """The cell URIs of notebook ``uri``, in order (none if it is not open)."""
        nb = self._notebooks.get(uri)
        return [c.uri for c in nb.cells] if nb else []

    def notebook_of(self, cell_uri: str) -> Notebook | None:
        owner = self._owner.get(cell_uri)
        return self._notebooks.get(owner) if owner else None

    def cell_context(self, cell_uri: str) -> CellContext | None:
        """The code cells above and below ``cell_uri`` as text (None: not a notebook cell).

        Uses the documents as the current request sees them (the store's
        dispatch snapshot), so the neighbours match the cell's own text.
        """
        nb = self.notebook_of(cell_uri)
        if nb is None:
            return None
        index = next(i for i, c in enumerate(nb.cells) if c.uri == cell_uri)
        here = self._doc(cell_uri)
        language = here.language_id if here else None
        before: list[tuple[str, str]] = []
        after: list[tuple[str, str]] = []
        for i, cell in enumerate(nb.cells):
            doc = self._doc(cell.uri) if cell.code and i != index else None
            if doc is None or doc.language_id != language:
                continue
            (before if i < index else after).append((cell.uri, doc.text))
        return CellContext(
            before="".join(CELL_MARKER + _ended(text) + "\n" for _, text in before) + (CELL_MARKER if before else ""),
            after="".join("\n\n" + CELL_MARKER + text.rstrip("\n") for _, text in after) + ("\n" if after else ""),
            cells_before=tuple(u for u, _ in before),
            cells_after=tuple(u for u, _ in after),
        )

    def _doc(self, uri: str) -> Document | None:
        try:
            return self.documents.get(uri)
        except KeyError:
            return None

    def __len__(self) -> int:
        return len(self._notebooks)


def _ended(text: str) -> str:
    """``text`` ending in exactly one newline."""
    return text.rstrip("\n") + "\n"
