"""Work-done progress that the server starts (model loads, workspace indexing).

Progress is a courtesy: the work never waits for it.  ``begin`` sends
``window/workDoneProgress/create`` and returns at once; the ``$/progress``
begin (then the latest report, and the end if the work is over meanwhile) goes
out once the client has answered.  A client that does not answer within
``CREATE_TIMEOUT_S`` (or answers with an error) gets no progress for that work,
and its request is forgotten, as the fill command forgets an unanswered
``workspace/applyEdit``.  (A client that never answered the create used to hold
the model load, and every request waiting for it, forever.)
"""
from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lsprotocol import types
from pygls.protocol import JsonRPCProtocol

from lsp_server.pygls_internals import forget_request

log = logging.getLogger(__name__)

#: how long the client may take to answer ``window/workDoneProgress/create``
CREATE_TIMEOUT_S = 30.0


@dataclass
class _Work:
    """One piece of work with progress: what to send once the client has the token."""

    title: str
    created: bool = False
    report: str | None = None
    end: str | None = None


class ClientProgress:
    """``$/progress`` for the server's own work, never waiting for the client."""

    def __init__(self, protocol: JsonRPCProtocol, supported: Callable[[], bool],
                 timeout_s: float = CREATE_TIMEOUT_S) -> None:
        self.protocol = protocol
        self.supported = supported
        self.timeout_s = timeout_s
        self._work: dict[str, _Work] = {}

    def begin(self, title: str) -> str | None:
        """A token for new work (None: the client has no work-done progress); the
        create request goes out now, the begin once the client answers it."""
        if not self.supported():
            return None
        token = f"diffill-{uuid.uuid4().hex[:8]}"
        self._work[token] = _Work(title)
        msg_id = f"diffill-progress-{uuid.uuid4().hex[:12]}"
        future = self.protocol.send_request(types.WINDOW_WORK_DONE_PROGRESS_CREATE,
                                            types.WorkDoneProgressCreateParams(token=token), msg_id=msg_id)
        asyncio.ensure_future(self._created(token, msg_id, future))
        return token

    def report(self, token: str | None, message: str) -> None:
        """A progress message (only the latest one is kept until the token exists)."""
        if token is None or (work := self._work.get(token)) is None:
            return
        if work.created:
            self._send(token, types.WorkDoneProgressReport(message=message))
        else:
            work.report = message

    def end(self, token: str | None, message: str) -> None:
        """The work is over (sent now, or right after the begin once the client answers)."""
        if token is None or (work := self._work.get(token)) is None:
            return
        if work.created:
            del self._work[token]
            self._send(token, types.WorkDoneProgressEnd(message=message))
        else:
            work.end = message

    def __len__(self) -> int:
        """Work whose progress is still open (bookkeeping: bounded)."""
        return len(self._work)

    async def _created(self, token: str, msg_id: str, future: Any) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), self.timeout_s)
        except TimeoutError:
            forget_request(self.protocol, msg_id)
            log.warning("the client did not answer window/workDoneProgress/create within %g s: "
                        "no progress shown for %r", self.timeout_s, self._work[token].title)
            del self._work[token]
            return
        except asyncio.CancelledError:  # the server is exiting
            self._work.pop(token, None)
            raise
        except Exception as exc:  # noqa: BLE001 - an error answer: progress is optional
            log.warning("work done progress refused: %s", exc)
            del self._work[token]
            return
        work = self._work[token]
        work.created = True
        self._send(token, types.WorkDoneProgressBegin(title=work.title, cancellable=False))
        if work.report is not None and work.end is None:
            self._send(token, types.WorkDoneProgressReport(message=work.report))
        if work.end is not None:
            self.end(token, work.end)

    def _send(self, token: str, value: Any) -> None:
        self.protocol.notify(types.PROGRESS, types.ProgressParams(token=token, value=value))
