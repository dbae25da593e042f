"""LSP features, one module each, registered on a server by ``register_all``."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lsp_server.server import DiffillServer


def register_all(server: DiffillServer) -> None:
    from lsp_server.features import completion, context, fill_command, inline_completion, lifecycle, stats

    for module in (lifecycle, inline_completion, completion, fill_command, stats, context):
        module.register(server)
