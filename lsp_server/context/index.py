"""The workspace symbol index: which file defines which name, on which lines.

Built by one background thread that walks the workspace and merges what a
worker process at the lowest CPU priority parses (``worker``: tree-sitter holds
the GIL, so parsing on a thread would stall completions); edits, saves and
watched-file events re-index single files.  Files over ``MAX_FILE_BYTES`` are
skipped (generated code, bundles: 512 KB parses in about 150 ms).  Only ranges are kept, not text: a definition's lines
are read again when a request uses them, so memory stays bounded by the caps
below (about 100 bytes per definition).
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from lsp_server.context.files import Stamp
from lsp_server.context.languages import EXTENSIONS, grammar_for
from lsp_server.context.privacy import Rules
from lsp_server.context.symbols import Symbol
from lsp_server.context.worker import (
    INLINE_MAX_CHARS,
    WORKER_MIN_FILES,
    Item,
    Parsed,
    ParseWorker,
    WorkerStopped,
    symbols_of,
)

log = logging.getLogger(__name__)

#: files and definitions kept at most: the memory bound (a larger workspace is indexed in part)
MAX_FILES = 50_000
MAX_DEFINITIONS = 2_000_000
#: a build reports progress every this many files
PROGRESS_EVERY = 250
#: files parsed per batch (one round trip to the worker process)
BATCH = 32
#: an edited open document is parsed again only once typing has paused this long: a parse
#: per keystroke competed with the completion that keystroke asked for (tree-sitter holds the GIL)
TYPING_QUIET_S = 1.0

#: (message, files done) -> None, called from the index thread
ProgressFn = Callable[[str, int], None]


@dataclass(frozen=True)
class Definition:
    """Where ``name`` is defined: lines ``start``..``end`` (exclusive) of ``path``,
    bytes ``first_byte``..``end_byte`` of the file version ``stamp`` (None: the
    text came from the editor, or the bytes are unknown)."""

    name: str
    path: str
    start: int
    end: int
    first_byte: int = -1
    end_byte: int = -1
    stamp: Stamp | None = None


class SymbolIndex:
    """name -> the files defining it, and per file its definitions grouped by
    name (a lookup touches only the name's own spans).  Thread-safe: written by
    the index thread, read by requests on the event loop; a file's entry is
    replaced whole, never changed in place."""

    def __init__(self, max_files: int = MAX_FILES, max_definitions: int = MAX_DEFINITIONS) -> None:
        self.max_files = max_files
        self.max_definitions = max_definitions
        self._files: dict[str, dict[str, tuple[tuple[int, int, int, int], ...]]] = {}
        self._stamps: dict[str, Stamp] = {}
        self._by_name: dict[str, list[str]] = {}
        self._definitions = 0
        self._lock = threading.Lock()

    def put(self, path: str, symbols: Iterable[Symbol], stamp: Stamp | None = None) -> bool:
        """Replace ``path``'s definitions (parsed from the file version ``stamp``,
        or from an editor's text); False when the index is full."""
        spans: dict[str, list[tuple[int, int, int, int]]] = {}
        n = 0
        for sym in symbols:
            spans.setdefault(sym.name, []).append((sym.start, sym.end, sym.first_byte, sym.end_byte))
            n += 1
        with self._lock:
            self._drop(path)
            if len(self._files) >= self.max_files or self._definitions + n > self.max_definitions:
                return False
            self._files[path] = {name: tuple(v) for name, v in spans.items()}
            if stamp is not None:
                self._stamps[path] = stamp
            self._definitions += n
            for name in spans:
                self._by_name.setdefault(name, []).append(path)
            return True

    def remove(self, path: str) -> None:
        with self._lock:
            self._drop(path)

    def clear(self) -> None:
        with self._lock:
            self._files.clear()
            self._stamps.clear()
            self._by_name.clear()
            self._definitions = 0

    def _drop(self, path: str) -> None:
        old = self._files.pop(path, None)
        self._stamps.pop(path, None)
        if old is None:
            return
        self._definitions -= sum(len(v) for v in old.values())
        for name in old:
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
            paths = self._by_name.get(name, ())[:limit]
            return [Definition(name, p, start, end, first, last, self._stamps.get(p)) for p in paths
                    for start, end, first, last in self._files.get(p, {}).get(name, ())]

    def count(self, name: str) -> int:
        with self._lock:
            return len(self._by_name.get(name, ()))

    def names_in(self, path: str) -> Collection[str]:
        """The names ``path`` defines (a live view of an entry that is never mutated)."""
        with self._lock:
            return self._files.get(path, {}).keys()

    def full(self) -> bool:
        return len(self._files) >= self.max_files or self._definitions >= self.max_definitions

    def __contains__(self, path: str) -> bool:
        return path in self._files

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"files": len(self._files), "definitions": self._definitions, "names": len(self._by_name)}


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


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _lower_priority() -> None:
    """Nice the index thread (Linux: per thread), so that the engine keeps the CPU."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass


class Indexer:
    """Runs builds and single-file updates, in order, on one background thread
    (an update that waits for a pause in typing waits on a timer, not on the thread)."""

    def __init__(self, index: SymbolIndex) -> None:
        self.index = index
        self.rules: Rules | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="diffill-index", initializer=_lower_priority)
        self.worker = ParseWorker()
        self._generation = 0
        #: path -> (text_of, language id, monotonic time before which it is not parsed)
        self._pending: dict[str, tuple[Callable[[], str | None], str | None, float]] = {}
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
        try:
            return self._build_files(generation, rules, open_texts, progress)
        except WorkerStopped:  # shut down meanwhile: the server is exiting
            return self.files_seen

    def _build_files(self, generation: int, rules: Rules, open_texts: Callable[[], dict[str, str]],
                     progress: ProgressFn | None) -> int:
        """Walk, then parse in batches (two in flight, so the worker never waits
        for this thread) and merge each batch as it comes back."""
        self.index.clear()
        opened = open_texts()
        paths: list[str] = []
        for path in source_files(rules):
            if self._generation != generation:
                return 0
            paths.append(path)
            if len(paths) >= self.index.max_files:
                break
        in_worker = len(paths) >= WORKER_MIN_FILES
        batches = [[(p, opened.get(p), grammar_for(p)) for p in paths[i:i + BATCH]]
                   for i in range(0, len(paths), BATCH)]
        flight: deque[tuple[Future[list[Parsed]], list[Item]]] = deque()
        done = 0
        for n, batch in enumerate(batches):
            flight.append((self.worker.submit(batch, in_worker), batch))
            if len(flight) < 2 and n + 1 < len(batches):
                continue
            future, items = flight.popleft()
            if self._generation != generation:
                return done
            done = self._merge(self.worker.result(future, items), done, progress)
            if self.index.full():
                log.warning("symbol index full at %d files; the rest of the workspace is not indexed", done)
                break
        else:
            while flight and self._generation == generation:
                future, items = flight.popleft()
                done = self._merge(self.worker.result(future, items), done, progress)
        for future, _ in flight:
            future.cancel()
        if self._generation != generation:
            return done
        for path, text in opened.items():  # open documents outside the folders
            if path not in self.index and rules.may_use_open(path) and self._generation == generation:
                self._parse_one(path, text, grammar_for(path))
        self.ready = True
        return done

    def _merge(self, parsed: list[Parsed], done: int, progress: ProgressFn | None) -> int:
        for path, found, stamp in parsed:
            if found is not None:
                self.index.put(path, symbols_of(found), stamp)
            done += 1
            if progress is not None and done % PROGRESS_EVERY == 0:
                progress(f"{done} files", done)
        self.files_seen = done
        return done

    def update(self, path: str, text_of: Callable[[], str | None], language_id: str | None = None,
               quiet_s: float = 0.0) -> None:
        """Re-index ``path`` soon: ``text_of`` gives its text (an open document's,
        or None to read the file; a missing file is dropped).  Updates of one path
        coalesce while one is queued: the latest ``text_of`` wins.  With ``quiet_s``
        (keystrokes), the parse waits until no update of the path came for that long."""
        with self._lock:
            queued = path in self._pending
            self._pending[path] = (text_of, language_id, time.monotonic() + quiet_s)
        if not queued:
            self._pool.submit(self._update, path)

    def _update(self, path: str) -> None:
        with self._lock:
            if path not in self._pending:  # shut down meanwhile
                return
            text_of, language_id, not_before = self._pending[path]
            wait = not_before - time.monotonic()
            if wait > 0:  # typing goes on: come back when it may have paused (the thread stays free meanwhile)
                timer = threading.Timer(wait, self._resubmit, (path,))
                timer.daemon = True
                timer.start()
                return
            del self._pending[path]
        rules = self.rules
        text = text_of()
        allowed = rules is None or (rules.may_read(path) if text is None else rules.may_use_open(path))
        if not allowed or (text is None and rules is None):
            self.index.remove(path)
            return
        try:
            self._parse_one(path, text, grammar_for(path, language_id))
        except WorkerStopped:  # shut down meanwhile: the server is exiting
            pass

    def _parse_one(self, path: str, text: str | None, grammar: str | None) -> None:
        """Index one file (its text, or None: read it); large ones go to the worker: a
        parse here would hold the GIL that completions need."""
        big = len(text) > INLINE_MAX_CHARS if text is not None else _size(path) > INLINE_MAX_CHARS
        items: list[Item] = [(path, text, grammar)]
        [(_, found, stamp)] = self.worker.result(self.worker.submit(items, big or self.worker.running), items)
        if found is None:
            self.index.remove(path)
        else:
            self.index.put(path, symbols_of(found), stamp)

    def remove(self, path: str) -> None:
        self._pool.submit(self.index.remove, path)

    def _resubmit(self, path: str) -> None:
        try:
            self._pool.submit(self._update, path)
        except RuntimeError:  # shut down meanwhile
            pass

    def wait(self, timeout: float | None = None) -> None:
        """Block until the work queued so far is done, updates waiting for a pause
        in typing included (tests, benchmarks); ``TimeoutError`` after ``timeout`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            self._pool.submit(lambda: None).result(left)
            with self._lock:
                due = min((not_before for _, _, not_before in self._pending.values()), default=None)
            if due is None:
                return
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError("index updates still pending")
            time.sleep(max(due - time.monotonic(), 0.01))

    def shutdown(self) -> None:
        """Stop without waiting: queued updates are dropped, a build stops at its next
        batch, and the worker process is terminated after a short grace (``worker``)."""
        with self._lock:
            self._generation += 1
            self._pending.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.worker.shutdown()
