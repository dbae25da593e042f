"""Logging to a file (never to stdout: that is the LSP channel), and one line, not
a traceback, for each error the client caused."""
from __future__ import annotations

import logging
import os

from pygls.exceptions import JsonRpcException

#: set to 1 for full tracebacks of errors answered to the client (in the log and in
#: error responses' ``data``)
DEBUG_ENV = "DIFFILL_DEBUG"
#: pygls' own logger for the JSON-RPC layer
PYGLS_RPC_LOGGER = "pygls.protocol.json_rpc"

_handler: logging.Handler | None = None


def debug_enabled() -> bool:
    """Whether ``DIFFILL_DEBUG`` asks for full tracebacks."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def set_log_file(path: str | None, level: int = logging.INFO) -> None:
    """Send diffill and pygls logs to ``path`` (None: stop logging to a file).

    Raises ``OSError`` if ``path`` cannot be opened; the current log file is
    then kept.
    """
    global _handler
    root = logging.getLogger()
    # backslashreplace: a message may quote a client's lone surrogate, which strict UTF-8 refuses
    handler = logging.FileHandler(path, encoding="utf-8", errors="backslashreplace") if path else None
    if _handler is not None:
        root.removeHandler(_handler)
        _handler.close()
        _handler = None
    if handler is not None:
        _handler = handler
        _handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(_handler)
        root.setLevel(level)
        # pygls logs every message body at INFO: too much for a file
        logging.getLogger("pygls").setLevel(logging.WARNING)


class ClientErrorsInOneLine(logging.Filter):
    """pygls logs a full traceback for every error response it sends (an invalid
    position, a cancelled request: the client's doing, not a server fault) and for
    every message whose params do not fit their type.  Those become one line (the
    transport logs its own line for the latter); a server fault keeps its traceback.
    ``DIFFILL_DEBUG=1`` keeps everything."""

    def filter(self, record: logging.LogRecord) -> bool:
        if debug_enabled():
            return True
        if isinstance(record.msg, str) and record.msg.startswith("Unable to deserialize message"):
            return False  # the transport answers and logs it in one line (lsp_server/transport.py)
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, JsonRpcException):
            record.args = (_first_line(record), exc.code, exc.message)
            record.msg = "%s: answered with error %s: %s"
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _first_line(record: logging.LogRecord) -> str:
    try:
        text = record.getMessage()
    except Exception:  # noqa: BLE001 - a record whose args do not fit its message
        text = str(record.msg)
    return text.splitlines()[0][:300] if text else ""


_FILTER = ClientErrorsInOneLine()


def quiet_client_errors() -> None:
    """Install ``ClientErrorsInOneLine`` on pygls' JSON-RPC logger (idempotent)."""
    logger = logging.getLogger(PYGLS_RPC_LOGGER)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
