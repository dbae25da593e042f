"""The workspace symbol index: which file defines which name, on which lines.

Built in one background thread (lowered CPU priority, so keystroke completions
keep the cores), one file at a time; edits, saves and watched-file events
re-index single files.  Only ranges are kept, not text: a definition's lines
are read again when a request uses them, so memory stays bounded by the caps
below (about 100 bytes per definition).
"""
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from lsp_server.context.languages import EXTENSIONS, grammar_for
from lsp_server.context.privacy import SNIFF_BYTES, Rules, looks_binary
from lsp_server.context.symbols import Symbol, extract

log = logging.getLogger(__name__)

#: files larger than this are not indexed (generated code, bundles)
MAX_FILE_BYTES = 512 * 1024
#: files and definitions kept at most: the memory bound (a larger workspace is indexed in part)
MAX_FILES = 50_000
MAX_DEFINITIONS = 2_000_000
#: a build reports progress every this many files
PROGRESS_EVERY = 250

#: (message, files done) -> None, called from the index thread
ProgressFn = Callable[[str, int], None]


@dataclass(frozen=True)
class Definition:
    """Where ``name`` is defined: lines ``start``..``end`` (exclusive) of ``path``."""

    name: str
    path: str
    start: int
    end: int


class SymbolIndex:
    """name -> the files defining it, and per file its definitions.  Thread-safe:
    written by the index thread, read by requests on the event loop."""

    def __init__(self, max_files: int = MAX_FILES, max_definitions: int = MAX_DEFINITIONS) -> None:
        self.max_files = max_files
        self.max_definitions = max_definitions
        self._files: dict[str, tuple[Symbol, ...]] = {}
        self._by_name: dict[str, list[str]] = {}
        self._definitions = 0
        self._lock = threading.Lock()

    def put(self, path: str, symbols: list[Symbol]) -> bool:
        """Replace ``path``'s definitions; False when the index is full."""
        with self._lock:
            self._drop(path)
            if len(self._files) >= self.max_files or self._definitions + len(symbols) > self.max_definitions:
                return False
            self._files[path] = tuple(symbols)
            self._definitions += len(symbols)
            for name in {s.name for s in symbols}:
                self._by_name.setdefault(name, []).append(path)
            return True

    def remove(self, path: str) -> None:
        with self._lock:
            self._drop(path)

    def clear(self) -> None:
        with self._lock:
            self._files.clear()
            self._by_name.clear()
            self._definitions = 0

    def _drop(self, path: str) -> None:
        old = self._files.pop(path, None)
        if old is None:
            return
        self._definitions -= len(old)
        for name in {s.name for s in old}:
            paths = self._by_name.get(name)
            if paths is not None:
                try:
                    paths.remove(path)
                except ValueError:
                    pass
                if not paths:
                    del self._by_name[name]

    def lookup(self, name: str, limit: int = 16) -> list[Definition]:
        """Definitions of ``name`` (at most ``limit`` files)."""
        with self._lock:
            paths = list(self._by_name.get(name, ())[:limit])
            return [Definition(name, p, s.start, s.end) for p in paths for s in self._files.get(p, ())
                    if s.name == name]

    def count(self, name: str) -> int:
        with self._lock:
            return len(self._by_name.get(name, ()))

    def names_in(self, path: str) -> set[str]:
        with self._lock:
            return {s.name for s in self._files.get(path, ())}

    def full(self) -> bool:
        return len(self._files) >= self.max_files or self._definitions >= self.max_definitions

    def __contains__(self, path: str) -> bool:
        return path in self._files

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"files": len(self._files), "definitions": self._definitions, "names": len(self._by_name)}


def index_text(index: SymbolIndex, path: str, text: str, grammar: str | None) -> bool:
    """Index one file's text (an open document or a file just read)."""
    if grammar is None:
        return False
    symbols = extract(text.encode("utf-8", "surrogatepass"), grammar)
    if symbols is None:
        return False
    return index.put(path, symbols)


def read_source(path: str, rules: Rules | None) -> str | None:
    """A file's text if the rules allow reading it and it is small source text."""
    if rules is not None and not rules.may_read(path):
        return None
    try:
        if os.path.getsize(path) > MAX_FILE_BYTES:
            return None
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError:
        return None
    if len(data) > MAX_FILE_BYTES or looks_binary(data[:SNIFF_BYTES]):
        return None
    return data.decode("utf-8", "replace")


def source_files(rules: Rules) -> Iterator[str]:
    """Files of known languages under the workspace folders that the rules allow
    (ignored directories are not entered; symlinks are not followed out)."""
    for folder in rules.folders:
        for root, dirs, files in os.walk(folder, topdown=True, followlinks=False):
            dirs[:] = sorted(d for d in dirs if not os.path.islink(os.path.join(root, d))
                             and not rules.ignored(os.path.join(root, d), folder, is_dir=True))
            for name in sorted(files):
                if os.path.splitext(name)[1] not in EXTENSIONS:
                    continue
                path = os.path.join(root, name)
                if os.path.islink(path):
                    real = os.path.realpath(path)
                    if rules.folder_of(real) is None:
                        continue
                if rules.folder_of(path) == folder and not rules.ignored(path, folder):
                    yield path


def _lower_priority() -> None:
    """Nice the index thread (Linux: per thread), so that the engine keeps the CPU."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass


class Indexer:
    """Runs builds and single-file updates, in order, on one background thread."""

    def __init__(self, index: SymbolIndex) -> None:
        self.index = index
        self.rules: Rules | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="diffill-index", initializer=_lower_priority)
        self._generation = 0
        self._pending: dict[str, tuple[Callable[[], str | None], str | None]] = {}
        self._lock = threading.Lock()
        self.ready = False
        self.files_seen = 0

    def rebuild(self, rules: Rules, open_texts: Callable[[], dict[str, str]],
                progress: ProgressFn | None = None) -> Future[int]:
        """Index the workspace again from scratch (a running build stops)."""
        with self._lock:
            self._generation += 1
            generation = self._generation
        self.rules = rules
        self.ready = False
        return self._pool.submit(self._build, generation, rules, open_texts, progress)

    def _build(self, generation: int, rules: Rules, open_texts: Callable[[], dict[str, str]],
               progress: ProgressFn | None) -> int:
        self.index.clear()
        done = 0
        opened = open_texts()
        for path in source_files(rules):
            if self._generation != generation:
                return done
            text = opened.get(path)
            if text is None:
                text = read_source(path, None)  # the walk applied the rules already
            if text is not None:
                index_text(self.index, path, text, grammar_for(path))
            if self.index.full():
                log.warning("symbol index full at %d files; the rest of the workspace is not indexed", done)
                break
            done += 1
            self.files_seen = done
            if progress is not None and done % PROGRESS_EVERY == 0:
                progress(f"{done} files", done)
        for path, text in opened.items():  # open documents outside the folders
            if path not in self.index and rules.may_use_open(path):
                index_text(self.index, path, text, grammar_for(path))
        if self._generation == generation:
            self.ready = True
        return done

    def update(self, path: str, text_of: Callable[[], str | None], language_id: str | None = None) -> None:
        """Re-index ``path`` soon: ``text_of`` gives its text (an open document's,
        or None to read the file; a missing file is dropped).  Updates of one path
        coalesce while one is queued: the latest ``text_of`` wins."""
        with self._lock:
            queued = path in self._pending
            self._pending[path] = (text_of, language_id)
        if not queued:
            self._pool.submit(self._update, path)

    def _update(self, path: str) -> None:
        with self._lock:
            text_of, language_id = self._pending.pop(path)
        rules = self.rules
        text = text_of()
        if text is None:
            text = read_source(path, rules) if rules is not None else None
            if text is None:
                self.index.remove(path)
                return
        elif rules is not None and not rules.may_use_open(path):
            self.index.remove(path)
            return
        index_text(self.index, path, text, grammar_for(path, language_id))

    def remove(self, path: str) -> None:
        self._pool.submit(self.index.remove, path)

    def wait(self, timeout: float | None = None) -> None:
        """Block until the work queued so far is done (tests, benchmarks)."""
        self._pool.submit(lambda: None).result(timeout)

    def shutdown(self) -> None:
        with self._lock:
            self._generation += 1
        self._pool.shutdown(wait=False, cancel_futures=True)
