"""Diffusion families diffill loads natively (transformers' own networks, no remote code).

One module per family; each exports ``FAMILY`` (a ``NativeFamily``).  This
package only names them and recognises a checkpoint directory's family.
"""
from __future__ import annotations

import json
from pathlib import Path

from engine.backends.families.base import NativeFamily, read_config

#: family name -> module that defines it; DreamOn before Dream (it is a Dream with <|expand|>)
_MODULES = {
    "dreamon": "engine.backends.families.dreamon",
    "dream": "engine.backends.families.dream",
    "llada": "engine.backends.families.llada",
    "open-dcoder": "engine.backends.families.open_dcoder",
}
NAMES = tuple(_MODULES)


def get(name: str) -> NativeFamily:
    """The family called ``name`` (KeyError for names diffill does not load natively)."""
    import importlib

    return importlib.import_module(_MODULES[name]).FAMILY


def detect(path: str | Path) -> str | None:
    """The native family of the model directory ``path``, or None.

    A ``diffill.json`` ``{"family": ...}`` wins; otherwise each family looks at
    config.json (and, for DreamOn, the tokenizer files)."""
    path = Path(path)
    marker = path / "diffill.json"
    if marker.is_file():
        try:
            family = json.loads(marker.read_text()).get("family")
        except (OSError, json.JSONDecodeError, AttributeError):
            family = None
        if family in _MODULES:
            return family
    if not (path / "config.json").is_file():
        return None
    raw = read_config(path)
    for name in _MODULES:
        if get(name).matches(raw, path):
            return name
    return None
