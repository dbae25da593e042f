"""Definitions in one file, found with tree-sitter for any grammar.

Rather than one query per language, a small walk over the syntax tree that
knows the shapes most grammars share: definition nodes have a ``name`` field
(C-like declarators hide it in ``declarator`` chains); class-like nodes have a
``body`` whose members are definitions too; wrappers (decorators, ``export``,
``const``/``var`` declarations) hold the definition inside.  Function bodies
are not entered: local definitions are not what other files use.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from tree_sitter import Node

from lsp_server.context.languages import parser_for

_DEFINITION = re.compile(
    r"(function|method|class|struct|enum|interface|trait|type_alias|type|const|module|mod|impl|namespace|union|record|"
    r"object|protocol|extension|constructor|field|property|singleton_method|abstract_class)_"
    r"(definition|declaration|item|specifier|spec|signature)$")
_ALSO_DEFINITIONS = frozenset({
    "method", "class", "module", "singleton_method", "preproc_def", "preproc_function_def", "type_definition",
    "assignment", "variable_declarator", "const_spec", "var_spec", "type_spec", "function_signature",
})
#: wrappers whose children are the definitions
_WRAPPERS = frozenset({
    "decorated_definition", "export_statement", "lexical_declaration", "variable_declaration",
    "const_declaration", "var_declaration", "type_declaration", "expression_statement", "template_declaration",
    "ambient_declaration", "declaration", "field_declaration", "public_field_definition",
})
#: definitions whose body holds further definitions (members)
_CONTAINERS = re.compile(r"(class|struct|impl|interface|trait|module|namespace|object|protocol|extension|enum"
                         r"|record)")
_NAME_TYPES = frozenset({"identifier", "type_identifier", "field_identifier", "property_identifier", "constant",
                         "namespace_identifier", "simple_identifier", "name", "word"})
MAX_DEPTH = 4
MAX_SYMBOLS = 2_000


@dataclass(frozen=True)
class Symbol:
    """A definition: its name and lines ``start``..``end`` (end exclusive); bytes
    ``first_byte`` (where line ``start`` begins) .. ``end_byte`` of the parsed
    source, so that a request can read just these bytes of the file (-1: unknown)."""

    name: str
    start: int
    end: int
    first_byte: int = -1
    end_byte: int = -1


def _name(node: Node) -> str | None:
    target = node.child_by_field_name("name")
    if target is None and node.type == "assignment":
        target = node.child_by_field_name("left")
    hops = 0
    while target is None or target.type not in _NAME_TYPES:
        if target is None:
            target = node.child_by_field_name("declarator")
        else:
            nested = target.child_by_field_name("declarator") or target.child_by_field_name("name")
            if nested is None:
                return None
            target = nested
        hops += 1
        if target is None or hops > 4:
            return None
    text = target.text
    return text.decode("utf-8", "replace") if text else None


def _walk(node: Node, depth: int, out: list[Symbol], outer: Node | None = None) -> None:
    for child in node.named_children:
        if len(out) >= MAX_SYMBOLS:
            return
        kind = child.type
        if kind in _WRAPPERS:
            if depth < MAX_DEPTH:
                _walk(child, depth + 1, out, outer or child)
            continue
        if not (kind in _ALSO_DEFINITIONS or _DEFINITION.search(kind)):
            if kind in ("block", "body_statement", "declaration_list", "class_body", "field_declaration_list") \
                    and depth < MAX_DEPTH:
                _walk(child, depth + 1, out)
            continue
        name = _name(child)
        span = outer or child
        if name and len(name) > 1:
            out.append(Symbol(name, span.start_point[0], span.end_point[0] + 1,
                              span.start_byte - span.start_point[1], span.end_byte))
        body = child.child_by_field_name("body")
        if body is not None and depth < MAX_DEPTH and _CONTAINERS.search(kind):
            _walk(body, depth + 1, out)


def extract(source: bytes, grammar: str) -> list[Symbol] | None:
    """The definitions in ``source`` (None: no parser for ``grammar``)."""
    parser = parser_for(grammar)
    if parser is None:
        return None
    tree = parser.parse(source)
    out: list[Symbol] = []
    _walk(tree.root_node, 0, out)
    return out
