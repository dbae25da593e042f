"""Reading workspace files for context: only small regular source files, and
only where the read rules allow; a definition's own bytes without the rest.

The index records each file's (mtime, size) stamp with its definitions' byte
ranges, so a request reads just those bytes (``read_span``) instead of the
whole file, and a file changed since it was indexed is noticed, not misread.
"""
from __future__ import annotations

import os
import stat

from lsp_server.context.privacy import SNIFF_BYTES, Rules, looks_binary

#: files larger than this are not indexed or read (generated code, bundles; parsing
#: 512 KB takes about 150 ms of the index worker's time)
MAX_FILE_BYTES = 512 * 1024

#: what identifies one version of a file on disk: (mtime in ns, size)
Stamp = tuple[int, int]


def stamp_of(st: os.stat_result) -> Stamp:
    return st.st_mtime_ns, st.st_size


def read_bytes(path: str, rules: Rules | None) -> tuple[bytes, Stamp] | None:
    """A file's bytes and stamp if the rules allow reading it and it is a small
    regular file of text (not a FIFO or device: opening those can block)."""
    if rules is not None and not rules.may_read(path):
        return None
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_FILE_BYTES:
            return None
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError:
        return None
    if len(data) > MAX_FILE_BYTES or looks_binary(data[:SNIFF_BYTES]):
        return None
    return data, stamp_of(st)


def read_source(path: str, rules: Rules | None) -> str | None:
    """A file's text if the rules allow reading it and it is small source text."""
    got = read_bytes(path, rules)
    return got[0].decode("utf-8", "replace") if got is not None else None


#: bytes read past a span to finish its last line
LINE_TAIL = 256


def read_span(path: str, expected: Stamp, first_byte: int, end_byte: int, max_bytes: int) -> str | None:
    """Bytes ``first_byte``..``end_byte`` of ``path`` and the rest of the last line
    (at most ``max_bytes``, then cut at a line end) as text; None when the file
    is no longer the version indexed."""
    want = max(0, end_byte - first_byte)
    try:
        with open(path, "rb") as f:
            if stamp_of(os.fstat(f.fileno())) != expected:
                return None
            f.seek(first_byte)
            data = f.read(min(want + LINE_TAIL, max_bytes))
    except OSError:
        return None
    cut = data.find(b"\n", max(want - 1, 0)) if want <= max_bytes else data.rfind(b"\n")
    return (data[: cut + 1] if cut >= 0 else data).decode("utf-8", "replace")
