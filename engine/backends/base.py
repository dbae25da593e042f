"""The small protocol every backend implements.

A backend turns one request into a generator of drafts: it yields a ``Draft``
after each denoising step (the last one has ``done=True``) and *returns* the
``InfillResult`` (``StopIteration.value``).  It must call
``cancel.raise_if_cancelled()`` before each forward pass.
"""
from __future__ import annotations

from collections.abc import Generator
from typing import Protocol

from engine.cancellation import CancellationToken
from engine.types import Draft, InfillRequest, InfillResult

DraftGenerator = Generator[Draft, None, InfillResult]


class Backend(Protocol):
    name: str
    device: str
    dtype: str
    model_path: str

    @property
    def context_tokens(self) -> int:
        """The model's window in tokens (a remote server's once it said)."""
        ...

    def run(self, request: InfillRequest, cancel: CancellationToken) -> DraftGenerator:
        """Denoise the middle for ``request``, yielding drafts."""
        ...
