"""`diffill` command line: one subcommand per module, registered here.

Each command module exposes ``register(subparsers)`` which adds its parser and
sets ``func``; a command returns an exit code.  ``serve`` lives in
``lsp_server.cli`` (it is also ``python -m lsp_server``); this package sits above
both ``engine`` and ``lsp_server`` and is the only place that composes them.
"""
from __future__ import annotations

import argparse
import sys

from diffill import __version__, bench, doctor, fill, models, train
from lsp_server import cli as serve

#: modules that define subcommands, in help order
COMMAND_MODULES = [fill, serve, bench, doctor, models, train]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffill",
        description="Code infilling with bidirectional diffusion language models.",
    )
    parser.add_argument("--version", action="version", version=f"diffill {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
