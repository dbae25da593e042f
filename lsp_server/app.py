"""The composition root: a server with every feature registered.

``server`` knows the protocol plumbing and the request pipeline, ``features`` the
handlers; only this module knows both, so neither imports the other's dependents."""
from __future__ import annotations

from lsp_server.config import Settings
from lsp_server.features import register_all
from lsp_server.server import DiffillServer


def create_server(settings: Settings | None = None) -> DiffillServer:
    """A server with every feature registered."""
    server = DiffillServer(settings)
    register_all(server)
    return server
