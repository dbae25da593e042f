"""Exit when the client process dies (``processId`` of ``initialize``).

The LSP specification asks a server to exit when the process that started it
is gone: a client that crashes may leave the server's stdin open (held by
another process that inherited it), and the server would run on as an orphan
holding a model in memory.  The process is identified by pid and start time
(psutil), so a recycled pid does not keep the server alive.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psutil

log = logging.getLogger(__name__)

#: seconds between checks: the server exits within about this long of its client
POLL_S = 1.0


def parent_process(pid: int) -> psutil.Process | None:
    """The client process to watch; None if there is none to see from here.

    A pid that does not exist at ``initialize`` is not watched: the client may run
    in another pid namespace (a container), where its pid means nothing here.
    """
    try:
        return psutil.Process(pid)
    except (psutil.Error, ValueError, OverflowError) as exc:
        log.warning("processId %r: %s; not watching it", pid, exc)
        return None


def is_alive(process: psutil.Process) -> bool:
    """Whether the process still runs (same pid *and* start time, not a zombie)."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # access denied and the like: it exists
        return True


async def watch(process: psutil.Process, on_gone: Callable[[], None], poll_s: float = POLL_S) -> None:
    """Call ``on_gone`` once ``process`` has ended."""
    while is_alive(process):
        await asyncio.sleep(poll_s)
    log.warning("the client process %d is gone; exiting", process.pid)
    on_gone()
