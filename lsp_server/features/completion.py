"""`textDocument/completion`: the infill as one completion item, for clients
without inline completion.

The item's TextEdit replaces the identifier being typed (word start to
cursor) with that word + the middle, and ``filterText`` is the same text, so
clients that filter by the word under the cursor keep the item while the user
types characters that agree with it.  The list is incomplete so clients ask
again (and hit the cache or the model) instead of filtering a stale item.
Asked for (invoked), the list holds up to ``alternatives`` items, best first;
while typing, one, and only when sure enough (``minConfidence``).  Each item
says how sure the model was in its detail and label details.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

from lsp_server.documents.positions import position_at
from lsp_server.features.common import hole_at
from lsp_server.features.suggestions import accepted_command, percent
from lsp_server.suggestion import Suggestion

if TYPE_CHECKING:
    from lsp_server.server import DiffillServer

LABEL_CHARS = 60


def word_before(text: str, end: int) -> str:
    """The identifier that ends at ``end`` (``[\\w$]*``), found by walking back from it.

    Walking back costs the word's length; a regex anchored at ``end`` but searched
    from the line start cost the whole line (a minified file, or one with ``\\r``
    line breaks that a ``\\n`` search does not see) on every completion request.
    """
    start = end
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] in "_$"):
        start -= 1
    return text[start:end]


def register(server: DiffillServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(resolve_provider=False))
    async def completion(params: types.CompletionParams) -> types.CompletionList:
        pos = params.position
        hole = hole_at(server, params.text_document.uri, pos.line, pos.character)
        invoked = bool(params.context and params.context.trigger_kind == types.CompletionTriggerKind.Invoked)
        settings = server.settings
        outcome = await server.pipeline.complete(
            hole, kind="completion", debounce=not invoked, drafts=settings.drafts.completion,
            alternatives=settings.alternatives if invoked else 1, gate=not invoked,
        )
        if outcome is None or not outcome.text:
            return types.CompletionList(is_incomplete=True, items=[])
        text = hole.doc.text
        word = word_before(text, hole.start)
        start = position_at(text, hole.doc.starts, hole.start - len(word), server.documents.encoding)
        edit_range = types.Range(start=types.Position(start.line, start.character), end=pos)
        items = [_item(word, suggestion, edit_range, outcome.request_id, outcome.cached, index)
                 for index, suggestion in enumerate(outcome.suggestions())]
        return types.CompletionList(is_incomplete=True, items=items)


def _item(word: str, suggestion: Suggestion, edit_range: types.Range, request_id: str, cached: bool,
          index: int) -> types.CompletionItem:
    """One suggestion as a completion item, its confidence in the detail and label details."""
    new_text = word + suggestion.text
    first_line = new_text.split("\n", 1)[0]
    label = first_line if len(first_line) <= LABEL_CHARS else first_line[: LABEL_CHARS - 1] + "…"
    if "\n" in new_text:
        label += " …"
    sure = percent(suggestion)
    return types.CompletionItem(
        label=label or new_text.strip()[:LABEL_CHARS],
        label_details=types.CompletionItemLabelDetails(description=f"diffill {sure}".rstrip()),
        kind=types.CompletionItemKind.Text,
        detail=f"diffill, {sure} sure" if sure else "diffill",
        documentation=new_text if "\n" in new_text else None,
        filter_text=new_text,
        sort_text=str(index),
        preselect=index == 0,
        insert_text_format=types.InsertTextFormat.PlainText,
        text_edit=types.TextEdit(range=edit_range, new_text=new_text),
        command=accepted_command(suggestion, request_id, index),
        data={"requestId": request_id, "cached": cached, "index": index, **suggestion.as_json()},
    )
