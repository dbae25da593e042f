"""Optional extras of the diffill distribution: features the server does not need at run time.

``pip install diffill`` brings what the server and the command need; a feature whose
library lives in an extra says, in one line, which extra brings it.
"""
from __future__ import annotations

from engine.errors import EngineError


class MissingExtra(EngineError):
    """A feature needs a package of an optional extra that is not installed."""


def missing_extra_message(feature: str, package: str, extra: str) -> str:
    """The one line that names what is missing and the extra to install."""
    return (f"{feature} needs {package}, which is not installed: "
            f"install the {extra!r} extra (pip install 'diffill[{extra}]')")
