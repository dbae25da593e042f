"""Which tree-sitter grammar parses which file, and one parser per grammar per thread.

Grammars come from ``tree-sitter-language-pack`` (< 1.0: its wheels carry the
compiled grammars; 1.x downloads them at run time, which a language server
must not do).  Files of other types are not indexed.
"""
from __future__ import annotations

import os
import threading

from tree_sitter import Parser

#: file extension -> grammar name in the language pack
EXTENSIONS: dict[str, str] = {
    ".py": "python", ".pyi": "python", ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript",
    ".jsx": "javascript", ".ts": "typescript", ".mts": "typescript", ".cts": "typescript", ".tsx": "tsx",
    ".go": "go", ".rs": "rust", ".java": "java", ".kt": "kotlin", ".kts": "kotlin", ".scala": "scala",
    ".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".hpp": "cpp", ".hh": "cpp",
    ".cs": "csharp", ".rb": "ruby", ".php": "php", ".swift": "swift", ".lua": "lua", ".sh": "bash",
    ".ex": "elixir", ".exs": "elixir", ".hs": "haskell", ".ml": "ocaml", ".zig": "zig", ".dart": "dart",
    ".jl": "julia", ".r": "r", ".R": "r", ".pl": "perl", ".m": "objc",
}
#: LSP language ids that differ from the grammar name
LANGUAGE_IDS = {"typescriptreact": "tsx", "javascriptreact": "javascript", "shellscript": "bash",
                "objective-c": "objc", "c++": "cpp"}

_local = threading.local()


def grammar_for(path: str | None, language_id: str | None = None) -> str | None:
    """The grammar for a file by its extension, else by the editor's language id."""
    if path:
        grammar = EXTENSIONS.get(os.path.splitext(path)[1])
        if grammar:
            return grammar
    if language_id:
        name = LANGUAGE_IDS.get(language_id, language_id)
        return name if name in EXTENSIONS.values() else None
    return None


def parser_for(grammar: str) -> Parser | None:
    """This thread's parser for ``grammar`` (parsers are not thread-safe); None if missing."""
    cache: dict[str, Parser | None] = getattr(_local, "parsers", None) or {}
    _local.parsers = cache
    if grammar not in cache:
        try:
            from tree_sitter_language_pack import get_parser

            cache[grammar] = get_parser(grammar)  # type: ignore[arg-type]
        except (LookupError, ImportError, ValueError, OSError):
            cache[grammar] = None
    return cache[grammar]
