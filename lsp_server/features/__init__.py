"""LSP features, one module each, registered on a server by ``register_all``.

The features import the server; the server never imports them (``lsp_server.app``
puts the two together), so the dependency runs one way."""
from __future__ import annotations

from lsp_server.features import (
    completion,
    context,
    fill_command,
    inline_completion,
    lifecycle,
    stats,
    suggestions,
)
from lsp_server.server import DiffillServer


def register_all(server: DiffillServer) -> None:
    """Register every feature's handlers on ``server``."""
    for module in (lifecycle, inline_completion, completion, fill_command, stats, context, suggestions):
        module.register(server)
