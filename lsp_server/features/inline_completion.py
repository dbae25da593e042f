"""`textDocument/inlineCompletion` (LSP 3.18): the infill as ghost text.

Registered with ``InlineCompletionOptions`` because pygls only advertises
``inlineCompletionProvider`` when options are given.  Automatic triggers are
debounced, get one suggestion and only one sure enough (``minConfidence``); an
explicit invocation (the user asked, or cycles through suggestions) runs at
once and gets up to ``alternatives`` suggestions, best first, each with its
confidence (``lsp_server.features.suggestions``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

from lsp_server.features.common import hole_at
from lsp_server.features.suggestions import accepted_command

if TYPE_CHECKING:
    from lsp_server.server import DiffillServer


def register(server: DiffillServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(params: types.InlineCompletionParams) -> types.InlineCompletionList | None:
        pos = params.position
        hole = hole_at(server, params.text_document.uri, pos.line, pos.character)
        if params.context and params.context.selected_completion_info is not None:
            # the completion popup is open: the editor shows that item's text instead
            return types.InlineCompletionList(items=[])
        automatic = not params.context or params.context.trigger_kind == types.InlineCompletionTriggerKind.Automatic
        settings = server.settings
        outcome = await server.pipeline.complete(
            hole, kind="inline", debounce=automatic, drafts=settings.drafts.completion,
            alternatives=1 if automatic else settings.alternatives, gate=automatic,
        )
        if outcome is None:
            return types.InlineCompletionList(items=[])
        return types.InlineCompletionList(items=[
            types.InlineCompletionItem(
                insert_text=suggestion.text,
                range=types.Range(start=pos, end=pos),
                command=accepted_command(suggestion, outcome.request_id, index),
            )
            for index, suggestion in enumerate(outcome.suggestions())
        ])
