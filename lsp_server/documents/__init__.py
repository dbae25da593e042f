"""Open documents, LSP positions and the infill context around a cursor."""
from lsp_server.documents.context import InfillContext, extract
from lsp_server.documents.positions import PositionError
from lsp_server.documents.store import Change, Document, DocumentStore, RefusedDocumentError, UnknownDocumentError

__all__ = [
    "Change",
    "Document",
    "DocumentStore",
    "InfillContext",
    "PositionError",
    "RefusedDocumentError",
    "UnknownDocumentError",
    "extract",
]
