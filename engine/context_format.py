"""How text from other files is laid out before the cursor's file in a prompt.

One format, shared by the training recipe (cross-file examples) and by whatever
sends repository context at inference, so that the bundled model sees at
inference exactly what it was trained on::

    # file: pkg/util.py
    <snippet of another file>

    # file: pkg/main.py
    <the cursor's file: prefix, canvas, suffix>
"""
from __future__ import annotations

from collections.abc import Sequence

HEADER = "# file: {path}\n"


def file_header(path: str) -> str:
    """The line that names a file; newlines in the path are flattened."""
    return HEADER.format(path=path.replace("\n", " ").strip())


def format_context(snippets: Sequence[tuple[str, str]], current_path: str | None = None) -> str:
    """``(path, snippet)`` pieces, most relevant last, then the cursor file's header."""
    parts = [file_header(path) + text.rstrip("\n") + "\n\n" for path, text in snippets if text.strip()]
    if current_path:
        parts.append(file_header(current_path))
    return "".join(parts)
