"""How LSP params are turned into lsprotocol types: pygls' converter, with integers
taken only as JSON integers.

cattrs structures an ``int`` field with ``int(value)``, so a position given as
``{"line": "1", "character": 4.5}`` was served as 1:4.  A position is never a
string or a fraction, and docs/PROTOCOL.md promises -32602 for params that do
not fit their type: the transport answers it when structuring fails.
"""
from __future__ import annotations

from typing import Any

from cattrs import Converter
from pygls.protocol import default_converter


def strict_converter() -> Converter:
    """pygls' converter with ``int`` fields refusing strings, floats and booleans."""
    converter = default_converter()
    # registered for int, the hook also gets int's subclasses (bool, the LSP IntEnums):
    # those keep what the converter did before
    before = converter.get_structure_hook(int)

    def strict_int(value: Any, type_: type) -> Any:
        if type_ is not int:
            return before(value, type_)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TypeError(f"expected an integer, got {value!r}")

    converter.register_structure_hook(int, strict_int)
    return converter
