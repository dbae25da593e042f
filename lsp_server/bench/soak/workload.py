"""The editor side of the soak: real documents, seeded random edits and requests.

Everything random in a run is drawn here from one seeded ``random.Random``,
in the order the runner asks, so that one seed is one workload.  The texts are
the client's copies of the documents (``MirrorDoc``); every change to them
goes through an ``Editor`` (the runner), which tells the server.
"""
from __future__ import annotations

import asyncio
import bisect
import random
import re
import sysconfig
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from lsp_server.hole import RequestKind

#: what the client does with a request: awaits it, cancels it, or types over it
Mode = Literal["normal", "cancel", "supersede"]
Outcome = Literal["result", "cancelled", "error", "missing"]

#: most requests left running in the background (cancelled / superseded ones)
MAX_PENDING = 8
#: largest random delay before a cancel or a superseding keystroke (seconds)
MAX_CANCEL_DELAY_S = 0.05

_BREAK = re.compile(r"\r\n|\r|\n")
_SNIPPETS = ["x", "self.", "value", " = ", "return ", "(", ")", "len(items)", "if not ", "for i in range(",
             "data[key]", ", ", "None", "result.append(", "raise ValueError(", "    ", "else:", "#"]


class MirrorDoc:
    """What an editor's buffer is: the text the server must also have."""

    def __init__(self, uri: str, text: str, version: int) -> None:
        self.uri = uri
        self.text = text
        self.version = version
        self.original_len = len(text)
        self._starts: list[int] | None = None

    @property
    def starts(self) -> list[int]:
        if self._starts is None:
            self._starts = [0] + [m.end() for m in _BREAK.finditer(self.text)]
        return self._starts

    def line_count(self) -> int:
        return len(self.starts)

    def line(self, n: int) -> str:
        """Line ``n`` without its line break."""
        s = self.starts
        end = s[n + 1] if n + 1 < len(s) else len(self.text)
        return self.text[s[n]:end].rstrip("\r\n")

    def offset(self, line: int, character: int) -> int:
        """String index of an LSP position (UTF-16 columns)."""
        text = self.line(line)
        if text.isascii():
            return self.starts[line] + min(character, len(text))
        units = 0
        for i, ch in enumerate(text):
            if units >= character:
                return self.starts[line] + i
            units += 2 if ord(ch) > 0xFFFF else 1
        return self.starts[line] + len(text)

    def position(self, index: int) -> tuple[int, int]:
        """LSP (line, UTF-16 character) of a string index."""
        line = bisect.bisect_right(self.starts, index) - 1
        head = self.text[self.starts[line]:index]
        return line, len(head) + sum(1 for ch in head if ord(ch) > 0xFFFF)

    def replace(self, start: int, end: int, text: str) -> None:
        self.text = self.text[:start] + text + self.text[end:]
        self._starts = None


def pick_sources(count: int, rng: random.Random) -> list[Path]:
    """``count`` ASCII stdlib modules of 4-60 kB (real code, stable across runs)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = []
    for path in sorted(stdlib.glob("*.py")) + sorted(stdlib.glob("*/*.py")):
        if "test" in path.parts or "idlelib" in path.parts or not 4_000 <= path.stat().st_size <= 60_000:
            continue
        try:
            if path.read_bytes().isascii():
                files.append(path)
        except OSError:
            continue
    if len(files) < count:
        raise RuntimeError(f"only {len(files)} usable stdlib sources for {count} documents")
    return rng.sample(files, count)


# --- request bookkeeping ------------------------------------------------------------

@dataclass
class Req:
    """One request and what became of it."""

    index: int
    kind: RequestKind
    mode: Mode
    uri: str
    t0: float = 0.0
    t1: float | None = None
    outcome: Outcome = "missing"
    detail: str = ""
    nonempty: bool = False
    #: the document changed while it ran (by an applied fill): not a clean latency
    edited: bool = False
    msg_id: str = ""
    task: asyncio.Task | None = None

    @property
    def ms(self) -> float:
        return ((self.t1 or self.t0) - self.t0) * 1000.0

    @property
    def clean(self) -> bool:
        """A normal request answered with a result, its document untouched meanwhile."""
        return self.mode == "normal" and self.outcome == "result" and not self.edited and self.t1 is not None


def nonempty(result: Any) -> bool:
    """Whether a response offered any text (a fill's dict, or completion items)."""
    if isinstance(result, dict):
        return bool(result.get("text"))
    items = getattr(result, "items", None)
    return bool(items)


@dataclass
class Totals:
    """What the client did over the run, and the server's counters summed over samples."""

    edits: int = 0
    opens: int = 0
    closes: int = 0
    applied_edits: int = 0
    refused_edits: int = 0
    drafts: int = 0
    server: Counter[str] = field(default_factory=Counter)


# --- the editing session --------------------------------------------------------------

class Editor(Protocol):
    """Who tells the server about the client's documents (the runner)."""

    def opened(self, doc: MirrorDoc) -> None: ...

    def closed(self, uri: str) -> None: ...

    def changed(self, doc: MirrorDoc, start: tuple[int, int], end: tuple[int, int], text: str) -> None:
        """``doc.version`` is already the new one; ``doc.text`` is still the old text."""


class TextEditLike(Protocol):
    """An LSP ``TextEdit`` (range in line/UTF-16 character, new text)."""

    range: Any
    new_text: str


class Workload:
    """Open documents and the seeded random edits and choices made on them."""

    def __init__(self, rng: random.Random, pool: dict[str, Path], editor: Editor) -> None:
        self.rng = rng
        self.pool = pool  # every document the run may open
        self.editor = editor
        self.docs: dict[str, MirrorDoc] = {}  # open documents
        self.versions: dict[str, int] = {}  # last version per URI (monotonic across reopen)
        self.totals = Totals()

    # -- documents -------------------------------------------------------------
    def open(self, uri: str) -> None:
        text = self.pool[uri].read_text(encoding="utf-8")
        version = self.versions.get(uri, 0) + 1
        self.versions[uri] = version
        self.docs[uri] = doc = MirrorDoc(uri, text, version)
        self.editor.opened(doc)
        self.totals.opens += 1

    def close(self, uri: str) -> None:
        del self.docs[uri]
        self.editor.closed(uri)
        self.totals.closes += 1

    def churn(self) -> None:
        """Now and then close a document and open another (or the same again)."""
        if self.rng.random() >= 0.01:
            return
        self.close(self.rng.choice(sorted(self.docs)))
        self.open(self.rng.choice(sorted(set(self.pool) - set(self.docs))))

    def pick_document(self) -> MirrorDoc:
        return self.docs[self.rng.choice(sorted(self.docs))]

    def first_document(self) -> MirrorDoc:
        return self.docs[min(self.docs)]

    def change(self, doc: MirrorDoc, start: int, end: int, text: str) -> None:
        """One incremental change, computed against the client's current text."""
        (l0, c0), (l1, c1) = doc.position(start), doc.position(end)
        doc.version += 1
        self.versions[doc.uri] = doc.version
        self.editor.changed(doc, (l0, c0), (l1, c1), text)
        doc.replace(start, end, text)
        self.totals.edits += 1

    def apply(self, groups: Iterable[tuple[str, int | None, list[TextEditLike]]]) -> bool:
        """Apply a fill like an editor: only to the version it was made for
        (``None``: an unversioned edit).  False, and nothing more applied, at
        the first document that changed meanwhile."""
        for uri, version, edits in groups:
            doc = self.docs.get(uri)
            if doc is None or (version is not None and doc.version != version):
                self.totals.refused_edits += 1
                return False
            # every range refers to the text before the edit: apply from the end
            for e in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True):
                start = doc.offset(e.range.start.line, e.range.start.character)
                end = doc.offset(e.range.end.line, e.range.end.character)
                self.change(doc, start, end, e.new_text)
            self.totals.applied_edits += 1
        return True

    # -- edits --------------------------------------------------------------------
    def site(self, doc: MirrorDoc) -> int:
        """A string index in the middle of some code line."""
        for _ in range(20):
            n = self.rng.randrange(doc.line_count())
            text = doc.line(n)
            body = text.strip()
            if len(body) >= 4:
                indent = len(text) - len(text.lstrip())
                return doc.starts[n] + indent + self.rng.randint(1, len(body))
        return doc.starts[self.rng.randrange(doc.line_count())]

    def edit(self, doc: MirrorDoc) -> int:
        """A random edit of ``doc``; returns the cursor after it (a string index)."""
        rng = self.rng
        size = len(doc.text) / max(doc.original_len, 1)
        r = rng.random()
        if size > 1.25 or (size >= 0.75 and r < 0.08):
            return self._delete_lines(doc)
        if size < 0.75 or r < 0.18:
            return self._paste(doc)
        if r < 0.33:
            return self._backspace(doc)
        if r < 0.83:
            return self._type(doc)
        return self.site(doc)  # no edit: ask somewhere else

    def keystroke(self, doc: MirrorDoc, at: int) -> None:
        """One typed character at ``at`` (a superseding keystroke), if ``doc`` is still open."""
        if doc.uri in self.docs:
            at = min(at, len(doc.text))
            self.change(doc, at, at, self.rng.choice("abcxyz_ ."))

    def _type(self, doc: MirrorDoc) -> int:
        at = self.site(doc)
        snippet = self.rng.choice(_SNIPPETS)
        for ch in snippet[: self.rng.randint(1, len(snippet))]:
            self.change(doc, at, at, ch)
            at += 1
        return at

    def _backspace(self, doc: MirrorDoc) -> int:
        at = self.site(doc)
        line_start = doc.starts[doc.position(at)[0]]
        for _ in range(min(self.rng.randint(1, 4), at - line_start)):
            self.change(doc, at - 1, at, "")
            at -= 1
        return at

    def _paste(self, doc: MirrorDoc) -> int:
        n = doc.line_count()
        a = self.rng.randrange(n)
        b = min(n - 1, a + self.rng.randint(1, 6))
        chunk = doc.text[doc.starts[a]:doc.starts[b]] if b > a else doc.line(a) + "\n"
        at = doc.starts[self.rng.randrange(n)]
        self.change(doc, at, at, chunk)
        return at + len(chunk)

    def _delete_lines(self, doc: MirrorDoc) -> int:
        n = doc.line_count()
        a = self.rng.randrange(max(n - 1, 1))
        b = min(n - 1, a + self.rng.randint(1, 8))
        if b > a:
            self.change(doc, doc.starts[a], doc.starts[b], "")
        return self.site(doc)

    # -- request choices -------------------------------------------------------------
    def mode(self, cancel_fraction: float, supersede_fraction: float) -> Mode:
        r = self.rng.random()
        if r < cancel_fraction:
            return "cancel"
        return "supersede" if r < cancel_fraction + supersede_fraction else "normal"

    def kind(self) -> RequestKind:
        kinds: list[RequestKind] = ["inline", "completion", "command"]
        return self.rng.choices(kinds, [0.5, 0.3, 0.2])[0]

    def invoked(self) -> bool:
        """Whether an inline completion is invoked by the user (else automatic)."""
        return self.rng.random() < 0.8

    def fill_target(self, doc: MirrorDoc, at: int) -> dict[str, Any]:
        """The fill command's argument: the cursor, or a selection (part of the
        line, or whole lines: a block) three times in ten."""
        line, char = doc.position(at)
        arg: dict[str, Any] = {"uri": doc.uri, "position": {"line": line, "character": char}}
        if self.rng.random() < 0.3:
            end_line = min(line + self.rng.randint(0, 2), doc.line_count() - 1)
            end = doc.starts[end_line] if end_line > line else doc.starts[line] + len(doc.line(line))
            end_line, end_char = doc.position(end)
            arg = {"uri": doc.uri,
                   "range": {"start": arg["position"], "end": {"line": end_line, "character": end_char}}}
        return arg

    def delay(self) -> float:
        """Seconds before a cancel or a superseding keystroke."""
        return self.rng.uniform(0, MAX_CANCEL_DELAY_S)
