"""The engine's command-line options: which model, where it runs, and how a remote backend is reached.

They name ``load_engine``'s parameters one to one and check their values with the
engine's own limits, so every front end that loads an engine from a command line
(the ``diffill`` command's fill, doctor and bench, the server's ``serve`` and
``bench lsp``) shares one definition.  Only the standard library's argparse is
used: this is engine library code and imports nothing of the server or the command.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable

from engine.backends.remote.options import (
    MAX_CONNECT_TIMEOUT_S,
    MAX_READ_TIMEOUT_S,
    MAX_RETRIES,
    ClientOptions,
    check_retries,
    check_timeout,
)
from engine.errors import RemoteError


def add_model_options(parser: argparse.ArgumentParser) -> None:
    add_backend_options(parser)
    parser.add_argument("--model", default=None, metavar="NAME_PATH_OR_ID",
                        help="catalog name (`diffill models list`, e.g. dream-coder-7b or dream-coder-7b:int4), "
                             "model directory or hub id (default: the bundled model); with a remote --backend, "
                        "the served model's name")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--dtype", default=None,
                        help="float32, bfloat16 or float16 (default: per device); int8 on the CPU (dynamic "
                             "quantization) for the bundled model and DiffusionGemma; int8/int4 (bitsandbytes, "
                             "CUDA) for catalog families; fp8 for DiffusionGemma")
    parser.add_argument("--context-tokens", type=int, default=None,
                        help="prompt window in tokens (default: the model's inference default)")
    parser.add_argument("--allow-download", action="store_true",
                        help="allow fetching a hub id that is not in the local cache")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="allow model code from the model repository (models outside the catalog; "
                             "catalog families never need it)")
    parser.add_argument("--force", action="store_true",
                        help="load a catalog model even when it does not seem to fit the free memory")


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    """--backend, --url, --api-key-env and the connection options: where the model runs and how it is
    reached (shared by fill, serve, bench, doctor)."""
    from engine.backends.remote import BACKENDS

    parser.add_argument("--backend", default="local", choices=BACKENDS,
                        help="local: in this process (default); vllm: DiffusionGemma on vLLM; openai: an "
                             "OpenAI-compatible completions endpoint with suffix; llamacpp: llama-server /infill; "
                             "ollama: /api/generate")
    parser.add_argument("--url", default=None, metavar="URL",
                        help="the inference server's URL (remote backends), e.g. http://gpu-box:8000")
    parser.add_argument("--api-key-env", default=None, metavar="VAR",
                        help="environment variable holding the server's API key (sent as a Bearer token to "
                             "--url only, never logged)")
    parser.add_argument("--timeout-connect", type=_seconds("connect timeout", MAX_CONNECT_TIMEOUT_S),
                        default=None, metavar="SECONDS",
                        help="remote backends: seconds to wait for a connection (default 5)")
    parser.add_argument("--timeout-read", type=_seconds("read timeout", MAX_READ_TIMEOUT_S), default=None,
                        metavar="SECONDS",
                        help="remote backends: seconds to wait for the server's next bytes (default 60)")
    parser.add_argument("--retries", type=_retries, default=None, metavar="N",
                        help=f"remote backends: extra tries on HTTP 429/503, 0..{MAX_RETRIES} (default 2)")
    parser.add_argument("--no-proxy", action="store_true",
                        help="remote backends: connect directly, ignoring HTTPS_PROXY / HTTP_PROXY / ALL_PROXY "
                             "(by default they are used, except for hosts in NO_PROXY and loopback)")


def _seconds(what: str, most: float) -> Callable[[str], float]:
    """An argparse type: a timeout in seconds within (0, most], else a clear error."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"the {what} must be a number of seconds, got {text!r}") from None
        try:
            return check_timeout(what, value, most)
        except RemoteError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return parse


def _retries(text: str) -> int:
    try:
        return check_retries(int(text))
    except (ValueError, RemoteError):
        raise argparse.ArgumentTypeError(f"retries must be a whole number from 0 to {MAX_RETRIES}, "
                                         f"got {text!r}") from None


def remote_options_from_args(args: argparse.Namespace) -> ClientOptions:
    """The remote client's options from --timeout-connect/--timeout-read/--retries/--no-proxy."""
    defaults = ClientOptions()
    connect, read, retries = (getattr(args, name, None) for name in ("timeout_connect", "timeout_read", "retries"))
    return ClientOptions(
        connect_timeout_s=defaults.connect_timeout_s if connect is None else connect,
        read_timeout_s=defaults.read_timeout_s if read is None else read,
        retries=defaults.retries if retries is None else retries,
        proxy_from_env=not getattr(args, "no_proxy", False),
    )


def load_engine_from_args(args: argparse.Namespace, progress: bool = True):
    from engine import load_engine

    return load_engine(
        args.model,
        device=args.device,
        dtype=args.dtype,
        allow_download=args.allow_download,
        trust_remote_code=args.trust_remote_code,
        context_tokens=args.context_tokens,
        progress=progress,
        force=getattr(args, "force", False),
        backend=getattr(args, "backend", "local"),
        url=getattr(args, "url", None),
        api_key_env=getattr(args, "api_key_env", None),
        remote_options=remote_options_from_args(args),
    )
