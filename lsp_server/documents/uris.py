"""Which document URIs the server can keep, and how to show one that it cannot.

A URI arrives as a JSON string, which may hold a lone UTF-16 surrogate
(``"\\ud800"``) or a NUL character: neither can be part of a URI (RFC 3986 URIs
are ASCII, and a percent-encoded surrogate is not UTF-8) and neither can name a
file.  Kept as a document, such a URI broke whatever touched it later
(``os.path.realpath`` of every open document for repository context, the UTF-8
log file), so the document is refused as it is opened, and only that document.
"""
from __future__ import annotations

import os
from urllib.parse import unquote

from pygls.uris import to_fs_path


def uri_problem(uri: str) -> str | None:
    """Why ``uri`` cannot be kept as a document (None: it can)."""
    try:
        uri.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"it holds a lone UTF-16 surrogate ({shown(uri[exc.start:exc.end])}), which no URI or file name can hold"
    if "\0" in uri or (uri.startswith("file:") and "\0" in unquote(uri)):
        return "it holds a NUL character, which no file name can hold"
    if uri.startswith("file:") and fs_path(uri) is None:
        return "it does not name a file this system can open"
    return None


def fs_path(uri: str) -> str | None:
    """The local path of a ``file:`` URI, or None where it cannot be one (another
    scheme, a lone surrogate, a NUL, a name the file system encoding refuses)."""
    if not uri.startswith("file:"):
        return None
    try:
        path = to_fs_path(uri)
        if not path or "\0" in path:
            return None
        os.fsencode(path)
    except (UnicodeError, ValueError):
        return None
    return path


def shown(text: str) -> str:
    """``text`` safe to write anywhere (a log file, a message): lone surrogates and
    control characters as backslash escapes."""
    escaped = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in escaped)
