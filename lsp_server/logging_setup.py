"""Logging to a file (never to stdout: that is the LSP channel)."""
from __future__ import annotations

import logging

_handler: logging.Handler | None = None


def set_log_file(path: str | None, level: int = logging.INFO) -> None:
    """Send diffill and pygls logs to ``path`` (None: stop logging to a file).

    Raises ``OSError`` if ``path`` cannot be opened; the current log file is
    then kept.
    """
    global _handler
    root = logging.getLogger()
    handler = logging.FileHandler(path, encoding="utf-8") if path else None  # may raise: nothing changed yet
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
