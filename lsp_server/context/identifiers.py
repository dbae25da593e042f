"""Identifiers in code, and the lines around a cursor: shared by the sources."""
from __future__ import annotations

import re

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")
#: lines that import names, in most languages
IMPORT_LINE = re.compile(r"^\s*(from\s+\S+\s+import|import|#include|#import|use|require|using|open)\b|require\(",
                         re.M)
#: identifiers that are everywhere and name nothing worth showing
COMMON = frozenset([
    "self", "cls", "this", "None", "True", "False", "null", "nil", "true", "false", "return", "import", "from",
    "def", "class", "function", "const", "let", "var", "new", "and", "not", "for", "while", "with", "yield",
    "async", "await", "pass", "else", "elif", "print", "super", "init", "main", "args", "kwargs", "string",
    "str", "int", "float", "bool", "list", "dict", "tuple", "set", "len", "range", "type", "object", "value",
    "key", "data", "result",
])


def identifiers(text: str) -> list[str]:
    return IDENT.findall(text)


def lines_around(lines: list[str], line: int, before: int, after: int) -> tuple[int, int]:
    """The range of line numbers ``before`` above to ``after`` below ``line``."""
    return max(0, line - before), min(len(lines), line + after + 1)
