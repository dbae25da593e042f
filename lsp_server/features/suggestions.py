"""How a suggestion's confidence travels to the editor, and the command that counts
accepted suggestions.

LSP has no field for a completion's confidence.  Each inline completion item
(and completion item) carries the command ``diffill.accepted``, which the editor
runs when the user accepts it (so ``diffill/stats`` counts acceptances), and its
argument ``{requestId, index, confidence, spans}`` is where the editor reads how
sure the model was: the whole suggestion's confidence for a status line or a
label, and per-token ``[start, end, probability]`` spans for shading ghost text.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lsprotocol import types

from lsp_server.features.common import plain
from lsp_server.methods import ACCEPTED_COMMAND
from lsp_server.suggestion import Suggestion

if TYPE_CHECKING:
    from lsp_server.server import DiffillServer


def percent(suggestion: Suggestion) -> str:
    """The confidence as the editor shows it, e.g. "62%" ("" when unknown)."""
    confidence = suggestion.confidence
    return "" if confidence is None else f"{round(100 * confidence)}%"


def accepted_command(suggestion: Suggestion, request_id: str, index: int) -> types.Command:
    """The command an item carries: run on acceptance, its argument says how sure the model was."""
    sure = percent(suggestion)
    return types.Command(
        title=f"diffill ({sure} sure)" if sure else "diffill",
        command=ACCEPTED_COMMAND,
        arguments=[{"requestId": request_id, "index": index, **suggestion.as_json()}],
    )


def register(server: DiffillServer) -> None:
    @server.command(ACCEPTED_COMMAND)
    def accepted(*args: Any) -> None:
        """The user accepted a suggestion: count it (arguments are not trusted for anything else)."""
        args = tuple(plain(a) for a in args)
        if args and isinstance(args[0], dict):
            server.stats.accepted += 1
