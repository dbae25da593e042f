"""The ``Engine`` facade: one loaded backend, with infill/stream and input checks."""
from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Generator, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING

from engine.cancellation import CancellationToken
from engine.errors import InputError, OutOfMemory
from engine.types import Draft, InfillRequest, InfillResult

if TYPE_CHECKING:
    from engine.backends.base import Backend
    from engine.backends.remote.options import ClientOptions
    from engine.threads import ThreadPolicy

#: Largest prefix or suffix accepted, in characters.  Windowing keeps only the
#: lines near the cursor anyway; this bound only stops absurd inputs early.
MAX_INPUT_CHARS = 8 * 1024 * 1024


class Engine:
    """A loaded model behind one lock: one request runs at a time on the device."""

    def __init__(self, backend: Backend, threads: ThreadPolicy | None = None) -> None:
        self.backend = backend
        self.threads = threads
        self._lock = threading.Lock()

    @contextmanager
    def _turn(self) -> Iterator[None]:
        """The device lock; a remote backend (``serialised = False``) runs
        requests side by side and caps its own concurrency instead.  On the CPU
        the thread policy picks the request's thread count once the lock is held."""
        lock: AbstractContextManager[object] = (
            self._lock if getattr(self.backend, "serialised", True) else nullcontext())
        with lock:
            if self.threads is not None:
                self.threads.before_request()
            yield

    @property
    def model_path(self) -> str:
        return self.backend.model_path

    @property
    def device(self) -> str:
        return self.backend.device

    @property
    def context_tokens(self) -> int:
        return self.backend.context_tokens

    def token_counter(self) -> Callable[[str], int] | None:
        """Counts tokens as the model does, callable from any thread (None: the
        backend has no such counter; callers estimate)."""
        make = getattr(self.backend, "token_counter", None)
        return make() if make is not None else None

    def notes(self) -> list[str]:
        """What the user must be told once about the backend (a remote server that
        ignores the suffix, ...); empty for the in-process models."""
        return list(getattr(self.backend, "notes", ()))

    def describe(self) -> dict[str, str | int]:
        """What is loaded, for `diffill doctor` and server status messages."""
        return {
            "backend": self.backend.name,
            "model": self.backend.model_path,
            "device": self.backend.device,
            "dtype": self.backend.dtype,
            "context_tokens": self.backend.context_tokens,
        }

    def stream(
        self, request: InfillRequest, cancel: CancellationToken | None = None
    ) -> Generator[Draft, None, InfillResult]:
        """Yield a draft after every denoising step; the last one has ``done=True``, and
        the generator returns the ``InfillResult`` (``StopIteration.value``).

        Raises ``Cancelled`` within one step of ``cancel.cancel()``.
        """
        _check_input(request)
        token = cancel or CancellationToken()
        with self._turn(), self._out_of_memory_as_error():
            return (yield from self.backend.run(request, token))

    def infill(
        self, request: InfillRequest, cancel: CancellationToken | None = None
    ) -> InfillResult:
        """Run the request to the end and return the final middle."""
        _check_input(request)
        token = cancel or CancellationToken()
        with self._turn(), self._out_of_memory_as_error():
            gen = self.backend.run(request, token)
            while True:
                try:
                    next(gen)
                except StopIteration as stop:
                    return stop.value

    @contextmanager
    def _out_of_memory_as_error(self) -> Iterator[None]:
        """Turn torch's out-of-memory into ``OutOfMemory`` after releasing the
        allocator's cached blocks, so the next (smaller) request can still run.

        torch is only consulted if something imported it already: a remote
        backend never does, and must not pay for importing it."""
        torch = sys.modules.get("torch")
        if torch is None:
            yield
            return
        try:
            yield
        except torch.OutOfMemoryError as exc:
            if self.device.startswith("cuda"):
                torch.cuda.empty_cache()
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "no detail"
            raise OutOfMemory(f"out of memory on {self.device} while filling ({first})") from None


def _check_input(request: InfillRequest) -> None:
    for name, text in (("prefix", request.prefix), ("suffix", request.suffix)):
        if len(text) > MAX_INPUT_CHARS:
            raise InputError(
                f"{name} is {len(text):,} characters; the limit is {MAX_INPUT_CHARS:,}"
            )
    if not request.prefix and not request.suffix:
        raise InputError("prefix and suffix are both empty: nothing to fill between")


def load_engine(
    model: str | None = None,
    device: str = "auto",
    dtype: str | None = None,
    *,
    allow_download: bool = False,
    trust_remote_code: bool = False,
    context_tokens: int | None = None,
    threads: int | None = None,
    progress: bool = False,
    force: bool = False,
    backend: str = "local",
    url: str | None = None,
    api_key_env: str | None = None,
    remote_options: ClientOptions | None = None,
) -> Engine:
    """Load ``model`` (None: the bundled model; a catalog name such as
    ``dream-coder-7b`` once pulled; a local directory; or a hub id, which is only
    fetched when ``allow_download``) on ``device``.  ``force`` loads a catalog
    model even when it does not seem to fit the free memory.

    ``backend`` other than ``local`` (vllm, openai, llamacpp, ollama) uses the
    inference server at ``url`` instead, ``model`` naming the served model and
    ``api_key_env`` the environment variable that holds its API key and
    ``remote_options`` the timeouts, retries and proxy use; torch is not
    imported then.

    Raises ``ModelNotFoundError``, ``ModelLoadError``, ``UnsupportedModelError``,
    ``DeviceError`` or ``RemoteError`` with a one-line message.
    """
    if backend != "local":
        from engine.backends.remote import load_remote

        return Engine(load_remote(backend, url, model, api_key_env=api_key_env, options=remote_options,
                                  context_tokens=context_tokens))
    if url:
        from engine.errors import InputError

        raise InputError("a server URL (--url / url) needs a remote backend (--backend vllm, openai, llamacpp "
                         "or ollama)")
    from engine.loading import load_backend

    local = load_backend(
        model,
        device=device,
        dtype=dtype,
        allow_download=allow_download,
        trust_remote_code=trust_remote_code,
        context_tokens=context_tokens,
        threads=threads,
        progress=progress,
        force=force,
    )
    return Engine(local, _thread_policy(local, threads))


def _thread_policy(backend: Backend, threads: int | None) -> ThreadPolicy | None:
    """The adaptive thread count for a CPU model whose threads the user left open."""
    if threads or not str(getattr(backend, "device", "")).startswith("cpu"):
        return None
    import torch

    from engine.threads import ThreadPolicy

    return ThreadPolicy(torch.set_num_threads)
