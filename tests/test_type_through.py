"""Typing through a suggestion (lsp_server.type_through), alone and in the pipeline."""
from __future__ import annotations

from lsp_server.type_through import TAIL, TypeThrough

PREFIX = "def area(r):\n    ret"
SUFFIX = "\n\nprint(area(2))\n"


def test_typing_the_start_of_a_suggestion_gives_the_rest():
    shown = TypeThrough()
    shown.remember(("a", "inline"), PREFIX, SUFFIX, "s", "urn 3.14 * r * r")
    assert shown.rest(("a", "inline"), PREFIX + "u", SUFFIX, "s") == "rn 3.14 * r * r"
    assert shown.rest(("a", "inline"), PREFIX + "urn 3", SUFFIX, "s") == ".14 * r * r"
    assert shown.hits == 2


def test_anything_else_asks_the_model():
    shown = TypeThrough()
    shown.remember(("a", "inline"), PREFIX, SUFFIX, "s", "urn 3.14 * r * r")
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
    shown.remember(("a", "inline"), head + PREFIX, SUFFIX, "s", "urn r")
    assert len(head) > TAIL
    # the window moved (the prefix lost characters at its start), the tail still matches
    assert shown.rest(("a", "inline"), head[50:] + PREFIX + "u", SUFFIX, "s") == "rn r"


def test_empty_suggestions_are_not_kept_and_closed_documents_are_forgotten():
    shown = TypeThrough()
    shown.remember(("a", "inline"), PREFIX, SUFFIX, "s", "")
    assert shown.rest(("a", "inline"), PREFIX + "u", SUFFIX, "s") is None
    shown.remember(("a", "inline"), PREFIX, SUFFIX, "s", "urn r")
    shown.forget("a")
    assert shown.rest(("a", "inline"), PREFIX + "u", SUFFIX, "s") is None


def test_the_store_is_bounded():
    shown = TypeThrough(size=3)
    for i in range(5):
        shown.remember((str(i), "inline"), PREFIX, SUFFIX, "s", "urn r")
    assert shown.rest(("0", "inline"), PREFIX + "u", SUFFIX, "s") is None
    assert shown.rest(("4", "inline"), PREFIX + "u", SUFFIX, "s") == "rn r"
