"""Parsing for the symbol index, in a worker process at the lowest CPU priority.

Why a process: tree-sitter's ``parse`` holds the GIL for the whole file (96 ms
for a 470 KB module, measured), so parsing on a thread of the server stalls its
event loop and the engine's Python between forward passes.  A separate process
at nice 19 leaves both the GIL and the cores to completions: while a completion
runs, the kernel gives the worker about 1.5 % of a core (CFS weight 15 against
1024); when the editor is idle it gets all of them.

Small jobs stay on the calling thread (a worker costs a process start and
about 40 MB): builds of fewer than ``WORKER_MIN_FILES`` files, and texts
shorter than ``INLINE_MAX_CHARS`` when no worker runs yet.  If the worker
cannot start or dies, parsing falls back to the calling thread.

On shutdown the worker gets ``SHUTDOWN_GRACE_S`` to finish its batch and is then
terminated: a parse cannot be interrupted, and at nice 19 on a busy machine one
large file took minutes, which the server's exit waited for (the interpreter
joins the pool at exit, and the index thread waited on the result).  Work still
waiting for the worker then raises ``WorkerStopped`` (never parsed inline).
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import wait as mp_wait
from multiprocessing.process import BaseProcess
from typing import TypeVar

from lsp_server.context.files import Stamp, read_bytes
from lsp_server.context.symbols import Symbol, extract

log = logging.getLogger(__name__)
T = TypeVar("T")

#: builds with at least this many files parse in the worker process
WORKER_MIN_FILES = 64
#: texts longer than this parse in the worker even for a single-file update
INLINE_MAX_CHARS = 32 * 1024
#: the worker's nice value (19: the lowest priority)
WORKER_NICE = 19
#: how often the worker checks that the server still runs (seconds)
PARENT_POLL_S = 1.0
#: how long a shutdown lets the worker finish its batch before terminating it (seconds)
SHUTDOWN_GRACE_S = 0.5

#: one file to parse: (path, its text or None to read it from disk, grammar)
Item = tuple[str, str | None, str | None]
#: a definition as it travels back: (name, start line, end line, first byte, end byte)
Found = tuple[str, int, int, int, int]
#: what comes back: (path, definitions or None when unreadable / no grammar, the
#: file's stamp when it was read from disk, else None)
Parsed = tuple[str, list[Found] | None, Stamp | None]


def _start_worker(parent: int) -> None:
    """Runs first in the worker: nice it (on Linux per thread: this is the one
    that parses), and end it when the server is gone (killed, crashed: nothing
    else would, and an orphan would sit in its queue forever)."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, WORKER_NICE)
    except (AttributeError, OSError):
        pass
    threading.Thread(target=_watch_parent, args=(parent,), name="diffill-parent-watch", daemon=True).start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(0)


def worker_priority() -> int:
    """The calling process's nice value (tests ask the worker)."""
    return os.getpriority(os.PRIO_PROCESS, 0)


def parse_items(items: list[Item]) -> list[Parsed]:
    """Definitions of each item (in the worker, or inline); tuples pickle fast.
    A file is parsed as its bytes on disk, so byte ranges are the file's own."""
    out: list[Parsed] = []
    for path, text, grammar in items:
        data: bytes | None = None
        stamp: Stamp | None = None
        if text is None:
            got = read_bytes(path, None)  # the caller applied the read rules
            if got is not None:
                data, stamp = got
        else:
            data = text.encode("utf-8", "surrogatepass")
        found = None if data is None or grammar is None else extract(data, grammar)
        if found is None:
            out.append((path, None, None))
        else:
            out.append((path, [(s.name, s.start, s.end, s.first_byte, s.end_byte) for s in found], stamp))
    return out


def symbols_of(found: list[Found]) -> list[Symbol]:
    return [Symbol(*f) for f in found]


class WorkerStopped(Exception):
    """The worker was shut down: the work asked of it is not done."""


class ParseWorker:
    """The worker process, started on first use and kept for later updates."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._failed = False
        self._closed = False
        self._lock = threading.Lock()
        self._stopping: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._pool is not None

    def _ensure(self) -> ProcessPoolExecutor | None:
        with self._lock:
            if self._closed:
                raise WorkerStopped("the index worker was shut down")
            if self._pool is None and not self._failed:
                try:
                    self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                                     initializer=_start_worker, initargs=(os.getpid(),))
                except (OSError, ValueError, NotImplementedError) as exc:
                    log.warning("no index worker process (%s): parsing on the index thread", exc)
                    self._failed = True
            return self._pool

    def submit(self, items: list[Item], in_worker: bool) -> Future[list[Parsed]]:
        """Parse ``items`` in the worker (``in_worker``, when it can run) or now, inline;
        ``WorkerStopped`` after ``shutdown``."""
        pool = self._ensure() if in_worker else None
        if pool is not None:
            try:
                return pool.submit(parse_items, items)
            except (BrokenProcessPool, RuntimeError) as exc:
                self._stopped_or_broken(exc)
        if self._closed:
            raise WorkerStopped("the index worker was shut down")
        done: Future[list[Parsed]] = Future()
        done.set_result(parse_items(items))
        return done

    def result(self, future: Future[list[Parsed]], items: list[Item]) -> list[Parsed]:
        """The future's result; the items again inline if the worker died meanwhile,
        ``WorkerStopped`` if it was shut down."""
        try:
            return future.result()
        except (BrokenProcessPool, CancelledError) as exc:
            self._stopped_or_broken(exc)
            return parse_items(items)

    def _stopped_or_broken(self, exc: BaseException) -> None:
        if self._closed:
            raise WorkerStopped("the index worker was shut down") from exc
        if isinstance(exc, CancelledError):  # only a shutdown cancels work
            raise exc
        self._broken(exc)

    def call(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn`` in the worker (tests: its priority); starts it."""
        pool = self._ensure()
        return pool.submit(fn, *args).result() if pool is not None else fn(*args)

    def _broken(self, exc: BaseException) -> None:
        log.warning("the index worker process stopped (%s): parsing on the index thread", exc)
        with self._lock:
            self._failed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def shutdown(self, grace_s: float = SHUTDOWN_GRACE_S) -> None:
        """Stop the worker without waiting: queued work is cancelled, and the batch
        it is parsing gets ``grace_s`` before the process is terminated (on a
        thread of its own: the caller, the server's exit, goes on at once)."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is None:
            return
        table = _process_table(pool)
        pool.shutdown(wait=False, cancel_futures=True)  # waits for a process start in progress
        processes = list(table.values())
        if processes:
            self._stopping = threading.Thread(target=_terminate_after, args=(processes, grace_s),
                                              name="diffill-index-stop", daemon=True)
            self._stopping.start()

    def wait_stopped(self, timeout_s: float) -> bool:
        """After ``shutdown``: wait until the worker process has ended (terminated if
        need be); False if it still runs after ``timeout_s``."""
        stopping = self._stopping
        if stopping is not None:
            stopping.join(timeout_s)
            return not stopping.is_alive()
        return True


def _process_table(pool: ProcessPoolExecutor) -> dict[int, BaseProcess]:
    """The pool's worker processes by pid.  ``ProcessPoolExecutor`` has no public way to
    stop a worker in the middle of a job before Python 3.14 (``terminate_workers``);
    its process table is the only handle.  The table itself is returned, not a copy:
    a worker being started as the pool shuts down is entered in it when ``shutdown``
    returns (it waits for the start), and ``shutdown`` drops the pool's reference."""
    table = getattr(pool, "_processes", None)
    return table if isinstance(table, dict) else {}


def _terminate_after(processes: list[BaseProcess], grace_s: float) -> None:
    """Let ``processes`` end by themselves for ``grace_s``, then terminate them (SIGTERM
    ends a process even inside a parse), then kill what is left a second later."""
    alive = _still_running(processes, grace_s)
    if alive:
        log.info("the index worker is still parsing after %g s; terminating it", grace_s)
        for process in alive:
            _signal(process.terminate)
        for process in _still_running(alive, 1.0):
            _signal(process.kill)
        _still_running(alive, 1.0)
    for process in processes:  # reap them (the server may exit before the pool's own thread does)
        try:
            process.join(0)
        except (OSError, ValueError, AssertionError):  # closed, or joined there meanwhile
            pass


def _still_running(processes: list[BaseProcess], timeout_s: float) -> list[BaseProcess]:
    """Those of ``processes`` that have not ended within ``timeout_s``.  Seen through
    their sentinels, not ``is_alive``: the pool's own thread reaps them too, and a
    process reaped there looks alive from here."""
    deadline = time.monotonic() + timeout_s
    alive = list(processes)
    while alive and (left := deadline - time.monotonic()) > 0:
        try:
            ended = mp_wait([p.sentinel for p in alive], left)
        except (OSError, ValueError):  # a process closed meanwhile: the pool joined it
            return []
        alive = [p for p in alive if p.sentinel not in ended]
    return alive


def _signal(send: Callable[[], None]) -> None:
    try:
        send()
    except (OSError, ValueError):  # ended or closed meanwhile
        pass
