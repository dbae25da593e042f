"""Typing through a suggestion (lsp_server.type_through), alone and in the pipeline."""
from __future__ import annotations

from lsp_server.suggestion import Span, Suggestion
from lsp_server.type_through import TAIL, TypeThrough


def text_of(suggestion: Suggestion | None) -> str | None:
    return None if suggestion is None else suggestion.text

PREFIX = "def area(r):\n    ret"
SUFFIX = "\n\nprint(area(2))\n"


def test_typing_the_start_of_a_suggestion_gives_the_rest():
    shown = TypeThrough()
    shown.remember(("a", "inline"), PREFIX, SUFFIX, "s", Suggestion("urn 3.14 * r * r"))
    assert text_of(shown.rest(("a", "inline"), PREFIX + "u", SUFFIX, "s")) == "rn 3.14 * r * r"
    assert text_of(shown.rest(("a", "inline"), PREFIX + "urn 3", SUFFIX, "s")) == ".14 * r * r"
    assert shown.hits == 2


def test_the_rest_keeps_the_confidence_of_what_is_left():
    shown = TypeThrough()
    spans = (Span(0, 3, 0.9), Span(3, 9, 0.4), Span(9, 16, 0.6))  # "urn", " 3.14 ", "* r * r"
    shown.remember(("a", "inline"), PREFIX, SUFFIX, "s", Suggestion("urn 3.14 * r * r", (0.9, 0.4, 0.6), spans))
    rest = shown.rest(("a", "inline"), PREFIX + "urn 3", SUFFIX, "s")
    assert rest is not None and rest.text == ".14 * r * r"
    assert rest.spans == (Span(0, 4, 0.4), Span(4, 11, 0.6)) and rest.probabilities == (0.4, 0.6)


def test_anything_else_asks_the_model():
    shown = TypeThrough()
    shown.remember(("a", "inline"), PREFIX, SUFFIX, "s", Suggestion("urn 3.14 * r * r"))
    assert shown.rest(("a", "inline"), PREFIX + "x", SUFFIX, "s") is None  # typed something else
    assert shown.rest(("a", "inline"), PREFIX + "u", SUFFIX + "x", "s") is None  # the suffix changed
    assert shown.rest(("a", "inline"), PREFIX + "u", SUFFIX, "other settings") is None
    assert shown.rest(("b", "inline"), PREFIX + "u", SUFFIX, "s") is None  # another document
    assert shown.rest(("a", "inline"), PREFIX, SUFFIX, "s") is None  # nothing typed: the cache's job
    assert shown.rest(("a", "inline"), PREFIX + "urn 3.14 * r * r", SUFFIX, "s") is None  # all typed
    assert shown.rest(("a", "inline"), "x" + PREFIX[1:] + "u", SUFFIX, "s") is None  # an edit above


def test_a_long_prefix_is_compared_by_its_tail():
    shown = TypeThrough()
    head = "x = 1\n" * 200
    shown.remember(("a", "inline"), head + PREFIX, SUFFIX, "s", Suggestion("urn r"))
    assert len(head) > TAIL
    # the window moved (the prefix lost characters at its start), the tail still matches
    assert text_of(shown.rest(("a", "inline"), head[50:] + PREFIX + "u", SUFFIX, "s")) == "rn r"


def test_empty_suggestions_are_not_kept_and_closed_documents_are_forgotten():
    shown = TypeThrough()
    shown.remember(("a", "inline"), PREFIX, SUFFIX, "s", Suggestion(""))
    assert shown.rest(("a", "inline"), PREFIX + "u", SUFFIX, "s") is None
    shown.remember(("a", "inline"), PREFIX, SUFFIX, "s", Suggestion("urn r"))
    shown.forget("a")
    assert shown.rest(("a", "inline"), PREFIX + "u", SUFFIX, "s") is None


def test_the_store_is_bounded():
    shown = TypeThrough(size=3)
    for i in range(5):
        shown.remember((str(i), "inline"), PREFIX, SUFFIX, "s", Suggestion("urn r"))
    assert shown.rest(("0", "inline"), PREFIX + "u", SUFFIX, "s") is None
    assert text_of(shown.rest(("4", "inline"), PREFIX + "u", SUFFIX, "s")) == "rn r"
