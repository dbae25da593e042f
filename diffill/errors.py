"""How the command reports a failure: one ``diffill: error: ...`` line, never a traceback."""
from __future__ import annotations

import sys

from engine.errors import EngineError


def fail(message: str, code: int = 1) -> int:
    """Print a one-line error (no traceback) and return the exit code."""
    print(f"diffill: error: {message}", file=sys.stderr)
    return code


def user_error(exc: BaseException) -> str | None:
    """The one-line message for errors that are the user's, else None."""
    if isinstance(exc, (EngineError, ValueError, TypeError, OSError, UnicodeDecodeError)):
        return str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    return None
