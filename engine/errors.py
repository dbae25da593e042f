"""Engine errors: each carries a one-line message meant for the user."""
from __future__ import annotations


class EngineError(Exception):
    """Base class: anything the engine reports to callers as a user-facing error."""


class ModelNotFoundError(EngineError):
    """The model name, path or hub id does not resolve to weights we may load."""


class ModelLoadError(EngineError):
    """Weights exist but cannot be loaded (corrupt, incomplete, wrong format)."""


class UnsupportedModelError(EngineError):
    """The model loads but has no head this engine can use (e.g. no masked-LM head)."""


class InputError(EngineError):
    """The request itself is invalid (too large, bad position, ...)."""


class DeviceError(EngineError):
    """The requested device is unavailable or ran out of memory."""


class Cancelled(EngineError):
    """The request was cancelled; raised between denoising steps."""


class OutOfMemory(DeviceError):
    """The device ran out of memory during a request; the engine stays usable
    (cached blocks were released) and a smaller request or another device may work."""


class RemoteError(EngineError):
    """A remote inference server (vLLM, llama.cpp, Ollama, an OpenAI-compatible
    service) could not answer; the message names the server and the failure kind,
    ``status`` is the HTTP status where the server sent one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
