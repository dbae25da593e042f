"""How the remote client connects: timeouts, retries, concurrency, proxy.

Kept apart from the HTTP client so that the CLI and the language server can
build and check these options without opening connections.  The bounds live here
once; every entry point (``--timeout-connect`` ..., ``remoteConnectTimeoutMs``
...) reports a bad value with the same limits.
"""
from __future__ import annotations

from dataclasses import dataclass

from engine.errors import RemoteError

#: longest connect timeout accepted, in seconds: longer is a typo, not a network
MAX_CONNECT_TIMEOUT_S = 600.0
#: longest read timeout accepted (one canvas of a slow server is seconds, not hours)
MAX_READ_TIMEOUT_S = 3600.0
#: most retries on 429/503 (each waits up to max_retry_after_s)
MAX_RETRIES = 10


@dataclass(frozen=True)
class ClientOptions:
    """Connection behaviour; the defaults suit a team server on the local network."""

    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0
    max_concurrency: int = 4  # vLLM's --max-num-seqs for DiffusionGemma
    retries: int = 2  # extra tries on 429/503
    backoff_s: float = 0.25  # doubled after every retry
    max_retry_after_s: float = 5.0  # longest Retry-After honoured
    #: honour HTTPS_PROXY / HTTP_PROXY / ALL_PROXY / NO_PROXY from the environment
    proxy_from_env: bool = True

    def __post_init__(self) -> None:
        check_timeout("connect timeout", self.connect_timeout_s, MAX_CONNECT_TIMEOUT_S)
        check_timeout("read timeout", self.read_timeout_s, MAX_READ_TIMEOUT_S)
        check_retries(self.retries)
        if self.max_concurrency < 1:
            raise RemoteError(f"the concurrency cap must be at least 1, got {self.max_concurrency}")


def check_timeout(what: str, seconds: float, most: float) -> float:
    """``seconds`` if it is a usable timeout, else a one-line RemoteError."""
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds != seconds:
        raise RemoteError(f"the {what} must be a number of seconds, got {seconds!r}")
    if not 0 < seconds <= most:
        raise RemoteError(f"the {what} must be more than 0 and at most {most:g} s, got {seconds:g} s")
    return float(seconds)


def check_retries(retries: int) -> int:
    if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= MAX_RETRIES:
        raise RemoteError(f"retries must be a whole number from 0 to {MAX_RETRIES}, got {retries!r}")
    return retries
