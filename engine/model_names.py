"""Which model a name means: the bundled one, a catalog entry, or something else.

Why: both loading a model (``engine.loading``) and sizing it before loading
(``engine.model_fit``) start from a user's model name; they share this module
instead of the fit check reaching into the loader that calls it.
"""
from __future__ import annotations

import os
from pathlib import Path

BUNDLED_NAME = "diffill-tiny"
BUNDLED_DIR = Path(__file__).parent / "models" / BUNDLED_NAME


def catalog_choice(model: str | None):
    """The catalog entry (and variant) ``model`` names, or None (engine.catalog.lookup)."""
    from engine.catalog import lookup

    if not model or Path(os.path.expanduser(model)).is_dir():
        return None  # an existing directory wins over a catalog name
    return lookup(model)
