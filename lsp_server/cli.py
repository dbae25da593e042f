"""`diffill serve`: run the language server (stdio by default, or TCP on
127.0.0.1 only: the server reads and edits the user's code, so it must not
listen on other interfaces)."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any, NoReturn

from lsp_server.config import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve", help="run the diffill language server (stdio, or --tcp PORT)",
        description="Run the diffill language server. Settings given here are defaults; "
                    "the client's initializationOptions override them.",
    )
    add_serve_arguments(parser)
    parser.set_defaults(func=run_serve)


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stdio", action="store_true", help="talk LSP over stdin/stdout (the default)")
    parser.add_argument("--tcp", type=int, metavar="PORT", default=None,
                        help="listen on 127.0.0.1:PORT instead of stdio")
    from engine.arguments import add_backend_options

    add_backend_options(parser)
    parser.add_argument("--model", default=None, metavar="PATH_OR_ID",
                        help="model directory or hub id (default: the bundled model); with a remote --backend, "
                             "the served model's name")
    from lsp_server.config import BACKENDS

    parser.add_argument("--fill-model", default=None, metavar="NAME_PATH_OR_ID",
                        help="model for the fill command and its drafts, named as --model (default: --model "
                             "serves both); inline completions always use --model")
    parser.add_argument("--fill-backend", default=None, choices=BACKENDS,
                        help="where the fill model runs, as --backend (default: as --backend)")
    parser.add_argument("--fill-url", default=None, metavar="URL",
                        help="the fill model's inference server, as --url (default: --url when the fill "
                             "backend is --backend's)")
    parser.add_argument("--fill-api-key-env", default=None, metavar="VAR",
                        help="environment variable holding the fill server's API key, as --api-key-env")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--dtype", default=None, help="float32, bfloat16 or float16 (default: per device)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for the model")
    parser.add_argument("--log-file", default=None, metavar="PATH", help="write server logs to PATH")


def remote_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Settings fields from --timeout-connect/--timeout-read/--retries/--no-proxy (seconds -> ms);
    only those given, so that the defaults stay declared once in lsp_server/config.py."""
    out: dict[str, Any] = {}
    for flag, name in (("timeout_connect", "remote_connect_timeout_ms"), ("timeout_read", "remote_read_timeout_ms")):
        seconds = getattr(args, flag, None)
        if seconds is not None:
            out[name] = max(1, round(seconds * 1000))
    if getattr(args, "retries", None) is not None:
        out["remote_retries"] = args.retries
    if getattr(args, "no_proxy", False):
        out["remote_proxy"] = False
    return out


def run_serve(args: argparse.Namespace) -> int:
    from lsp_server.app import create_server
    from lsp_server.logging_setup import set_log_file

    if args.tcp is not None and not 0 < args.tcp < 65536:
        print(f"diffill: error: invalid port {args.tcp}", file=sys.stderr)
        return 2
    try:
        set_log_file(args.log_file)
    except OSError as exc:
        print(f"diffill: error: cannot write the log file: {exc}", file=sys.stderr)
        return 2
    if not args.log_file:
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        logging.getLogger("pygls").setLevel(logging.ERROR)
    settings = Settings(backend=args.backend, url=args.url, api_key_env=args.api_key_env,
                        model=args.model, fill_model=args.fill_model, fill_backend=args.fill_backend,
                        fill_url=args.fill_url, fill_api_key_env=args.fill_api_key_env,
                        device=args.device, dtype=args.dtype,
                        threads=args.threads, log_file=args.log_file, **remote_settings(args))
    server = create_server(settings)
    if args.tcp is not None:
        server.start_tcp("127.0.0.1", args.tcp)
    else:
        from lsp_server.transport import serve_stdio

        code = serve_stdio(server)
        exit_now(server, code)
    return 0


#: how long the exit waits for the index's worker process to be terminated (its grace included)
EXIT_WAIT_S = 2.0


def exit_now(server: Any, code: int) -> NoReturn:
    """End the process as soon as the background work is stopped.

    A model load in progress cannot be stopped, a parse in the index's worker
    only by terminating it, and the interpreter's own exit (joining thread and
    process pools, finalizing torch) took seconds on a busy machine: the client
    asked the process to end now, and nothing it holds needs finalizing.
    """
    server.stop_background_work()  # serve_stdio's server.shutdown() did it already: idempotent
    if not server.context.wait_stopped(EXIT_WAIT_S):
        logging.getLogger(__name__).warning("the index worker did not stop within %g s", EXIT_WAIT_S)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # the client closed it
            pass
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="diffill-serve")
    add_serve_arguments(parser)
    return run_serve(parser.parse_args(argv))
