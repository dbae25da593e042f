"""`diffill` command line: one subcommand per module, registered here.

Each command module exposes ``register(subparsers)`` which adds its parser and
sets ``func``; a command returns an exit code.  ``serve`` and ``bench lsp`` live
in ``lsp_server`` (imported lazily) so that the engine never imports LSP code
except at this single dispatch point.
"""
from __future__ import annotations

import argparse
import importlib
import sys

#: modules that define subcommands, in help order
COMMAND_MODULES = [
    "engine.cli.fill",
    "lsp_server.cli",
    "engine.cli.bench",
    "engine.cli.doctor",
    "engine.cli.models",
    "engine.cli.train",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffill",
        description="Code infilling with bidirectional diffusion language models.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a command whose module is not installed
            if exc.name and name.startswith(exc.name):
                continue
            raise
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
