"""Positions (UTF-16/UTF-8, strict vs clamped), incremental sync and context extraction."""
from __future__ import annotations

import pytest

from lsp_server.documents import (
    Change,
    DocumentStore,
    PositionError,
    UnknownDocumentError,
    extract,
)
from lsp_server.documents.positions import (
    UTF8,
    UTF16,
    UTF32,
    Pos,
    line_starts,
    offset_at,
    position_at,
)
from lsp_server.postprocess.context import FilterContext

EMOJI = "\U0001F60B"  # 2 UTF-16 units, 4 UTF-8 bytes


def test_line_starts_use_lsp_line_breaks_only():
    text = "a\r\nb\rc\nd\u2028e\x0cf"
    assert line_starts(text) == [0, 3, 5, 7]


@pytest.mark.parametrize("encoding,character,expected", [
    (UTF16, 5, 5), (UTF16, 7, 6), (UTF8, 9, 6), (UTF32, 6, 6),
])
def test_offset_after_astral_character(encoding, character, expected):
    text = f"x = '{EMOJI}'\n"
    assert offset_at(text, line_starts(text), Pos(0, character), encoding) == expected


@pytest.mark.parametrize("encoding,character", [(UTF16, 6), (UTF8, 6), (UTF8, 7), (UTF8, 8)])
def test_position_inside_a_character_is_an_error(encoding, character):
    text = f"x = '{EMOJI}'\n"
    with pytest.raises(PositionError):
        offset_at(text, line_starts(text), Pos(0, character), encoding)


def test_past_end_strict_and_clamped():
    text = "ab\ncd"
    starts = line_starts(text)
    with pytest.raises(PositionError):
        offset_at(text, starts, Pos(0, 3))
    with pytest.raises(PositionError):
        offset_at(text, starts, Pos(2, 0))
    assert offset_at(text, starts, Pos(0, 3), strict=False) == 2
    assert offset_at(text, starts, Pos(5, 0), strict=False) == 5
    # end of line excludes \r\n: character 2 is the end of "ab"
    crlf = "ab\r\ncd"
    assert offset_at(crlf, line_starts(crlf), Pos(0, 2)) == 2
    with pytest.raises(PositionError):
        offset_at(crlf, line_starts(crlf), Pos(0, 3))


def test_position_at_roundtrip():
    text = f"é{EMOJI}z\nq"
    starts = line_starts(text)
    for off in range(len(text) + 1):
        for enc in (UTF8, UTF16, UTF32):
            assert offset_at(text, starts, position_at(text, starts, off, enc), enc) == off


def test_incremental_changes_apply_in_order():
    store = DocumentStore(UTF16)
    store.open("u", f"a{EMOJI}b\nline2\n", 1, "python")
    doc = store.change("u", 2, [
        Change("X", (Pos(0, 3), Pos(0, 4))),   # replace "b" (after the 2-unit emoji)
        Change("", (Pos(1, 0), Pos(2, 0))),    # delete line 2 (positions in the new text)
        Change("!", (Pos(1, 0), Pos(1, 0))),
    ])
    assert doc.text == f"a{EMOJI}X\n!"
    assert doc.version == 2
    assert store.change("u", 3, [Change("full")]).text == "full"
    with pytest.raises(UnknownDocumentError):
        store.change("other", 1, [Change("x")])


def test_snapshots_are_immutable():
    store = DocumentStore()
    old = store.open("u", "abc", 1, None)
    store.change("u", 2, [Change("Z", (Pos(0, 0), Pos(0, 1)))])
    assert old.text == "abc" and store.get("u").text == "Zbc"


def test_extract_context_windows_at_line_boundaries():
    text = "".join(f"line{i}\n" for i in range(100))
    cursor = text.index("line50") + 4
    ctx = extract(text, cursor, prefix_chars=30, suffix_chars=20)
    assert ctx.prefix.endswith("line") and ctx.prefix.startswith("line4")
    assert "\n" in ctx.prefix and not ctx.prefix.startswith("ne")
    assert ctx.suffix.startswith("50\n") and ctx.suffix.endswith("\n")
    # the cursor line as the post-processing filters see it
    line = FilterContext(ctx.prefix, ctx.suffix)
    assert line.line_prefix == "line" and line.line_suffix == "50"


def test_extract_with_selection():
    ctx = extract("def f():\n    pass\n", 13, 17)
    assert ctx.prefix == "def f():\n    " and ctx.suffix == "\n"
    with pytest.raises(ValueError):
        extract("abc", 2, 1)


def test_extract_replaces_lone_surrogates_for_the_model():
    # a client may send "\ud800" in JSON; the tokenizer rejected it with a TypeError
    # that the server reported as an engine error (status "error" and a pop-up)
    text = "s = '\ud800'\nx = \udfff + \U0001F60B\n"
    cursor = text.index("x = ") + 4
    ctx = extract(text, cursor)
    assert ctx.prefix == "s = '\ufffd'\nx = " and ctx.suffix == "\ufffd + \U0001F60B\n"
    assert FilterContext(ctx.prefix, ctx.suffix).line_suffix == "\ufffd + \U0001F60B"
    assert len(ctx.prefix) == cursor  # one for one: offsets are unchanged
    (ctx.prefix + ctx.suffix).encode("utf-8")  # strict UTF-8 now works


def test_get_answers_from_the_dispatch_snapshot():
    import contextvars

    from lsp_server.documents.store import DISPATCH_SNAPSHOT

    store = DocumentStore()
    store.open("u", "v1", 1, None)

    ctx = contextvars.copy_context()  # pygls runs each message in its own context
    ctx.run(lambda: DISPATCH_SNAPSHOT.set(store.snapshot()))
    store.change("u", 2, [Change("v2")])
    assert ctx.run(store.get, "u").version == 1  # the request sees what the client saw
    assert store.get("u").version == 2 and store.current("u").version == 2
    store.close("u")
    assert ctx.run(store.get, "u").text == "v1"
    with pytest.raises(UnknownDocumentError):
        store.get("u")
