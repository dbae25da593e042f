"""`textDocument/inlineCompletion` (LSP 3.18): the infill as ghost text.

Registered with ``InlineCompletionOptions`` because pygls only advertises
``inlineCompletionProvider`` when options are given.  Automatic triggers are
debounced; an explicit invocation runs at once.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

from lsp_server.features.common import hole_at

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
        outcome = await server.pipeline.complete(
            hole, kind="inline", debounce=automatic, drafts=server.settings.drafts.completion
        )
        if outcome is None or not outcome.text:
            return types.InlineCompletionList(items=[])
        return types.InlineCompletionList(items=[
            types.InlineCompletionItem(
                insert_text=outcome.text,
                range=types.Range(start=pos, end=pos),
            )
        ])
