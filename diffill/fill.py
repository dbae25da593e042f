"""`diffill fill`: fill one position in a file, or serve JSONL requests on stdin.

One-off::

    diffill fill FILE --line L --col C

splits FILE at line L, column C (both 1-based; the column counts characters,
i.e. Unicode code points, not bytes; ``--col`` may be one past the last
character to fill at the end of the line) and prints the middle exactly as the
model wrote it, in UTF-8 with no newline added (``--json`` prints a JSON
record instead).

JSONL (``--jsonl``): every non-blank stdin line is a JSON object
``{"prefix": str, "suffix"?: str, "max_new_tokens"?: int, "steps"?: int,
"language"?: str, "single_line"?: bool, "id"?: any}``; for each, one line
``{"middle": str, "ms": float, "forwards": int, "tokens": int}`` (plus the
``id`` if given; ASCII JSON) is written to stdout and flushed, in input order.
With a remote ``--backend`` the record has ``"pieces"`` (streamed pieces the
server sent) instead of ``"forwards"`` (the model's forward passes here).  A bad line
gets ``{"error": "..."}`` and processing continues.  Blank lines are skipped.

``--single-line`` (or ``"single_line": true``) asks for one line: a remote
server is told to stop at the line break and the answer ends there.

Input problems (missing file, not UTF-8, position outside the file, unknown or
broken model) print one ``diffill: error: ...`` line on stderr, nothing on
stdout, and exit with status 1.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import IO, Any

from diffill.errors import fail, user_error
from engine.arguments import add_model_options, load_engine_from_args

#: file extension -> language id passed to the engine
LANGUAGES = {
    ".py": "python", ".pyi": "python", ".js": "javascript", ".jsx": "javascript",
    ".ts": "typescript", ".tsx": "typescript", ".rs": "rust", ".go": "go", ".c": "c",
    ".h": "c", ".cc": "cpp", ".cpp": "cpp", ".hpp": "cpp", ".java": "java", ".rb": "ruby",
    ".sh": "shellscript", ".lua": "lua", ".md": "markdown",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "fill", help="fill the middle at a file position, or serve JSONL requests",
        description=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", nargs="?", help="file to fill in (not with --jsonl)")
    parser.add_argument("--line", type=int, help="1-based line of the cursor")
    parser.add_argument("--col", type=int, help="1-based column of the cursor, in characters")
    parser.add_argument("--jsonl", action="store_true", help="read JSON requests from stdin, one per line")
    parser.add_argument("--json", action="store_true", help="one-off: print a JSON record instead of the middle")
    parser.add_argument("--language", default=None, help="language id (default: from the file extension)")
    parser.add_argument("--single-line", action="store_true",
                        help="one line is wanted: a remote server stops at the line break (as the editor's "
                             "single-line suggestions do)")
    add_sampler_options(parser)
    add_model_options(parser)
    parser.set_defaults(func=run)


def add_sampler_options(parser: argparse.ArgumentParser, max_new_tokens: int | None = 32) -> None:
    """--max-new-tokens, --steps, --sampler, --threshold, --seed (shared with `bench`)."""
    parser.add_argument("--max-new-tokens", type=int, default=max_new_tokens, metavar="N",
                        help="canvas size in tokens" + (f" (default {max_new_tokens})" if max_new_tokens else ""))
    parser.add_argument("--steps", type=int, default=None, metavar="N",
                        help="most denoising forward passes (default: chosen by the backend)")
    parser.add_argument("--sampler", default="threshold", choices=["threshold", "remask"],
                        help="threshold: commit every confident token per step; remask: low-confidence remasking")
    parser.add_argument("--threshold", type=float, default=0.9, help="confidence threshold (sampler threshold)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--refresh", type=int, default=None, metavar="N",
                        help="steps between full forward passes where the model allows reusing the context's "
                             "keys and values (1: every step is a full forward; default: the backend's)")


def run(args: argparse.Namespace) -> int:
    if args.jsonl:
        if args.file or args.line is not None or args.col is not None:
            return fail("--jsonl reads requests from stdin: do not give FILE, --line or --col")
        return _run_jsonl(args, sys.stdin.buffer, sys.stdout)
    if not args.file or args.line is None or args.col is None:
        return fail("give FILE --line L --col C, or --jsonl")
    try:
        text = read_text(Path(args.file))
        prefix, suffix = split_at(text, args.line, args.col)
        request = _request(args, prefix, suffix, args.language or language_for(args.file))
    except (OSError, ValueError) as exc:
        return fail(str(exc))
    engine = _load(args)
    if engine is None:
        return 1
    try:
        result = engine.infill(request)
    except Exception as exc:  # noqa: BLE001 - report one line, never a traceback
        return fail(user_error(exc) or f"internal error: {exc.__class__.__name__}: {exc}")
    finally:
        warn_notes(engine, set())
    if args.json:
        print(json.dumps(_record(result)))
    else:
        sys.stdout.reconfigure(encoding="utf-8")  # type: ignore[union-attr]
        sys.stdout.write(result.middle)
    sys.stdout.flush()
    return 0


def read_text(path: Path) -> str:
    """The file's text; one-line ``ValueError``/``OSError`` messages on failure."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise OSError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise OSError(f"{path}: is a directory") from None
    except PermissionError:
        raise OSError(f"{path}: permission denied") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None


def split_at(text: str, line: int, col: int) -> tuple[str, str]:
    """Split ``text`` at 1-based ``line`` and character ``col``.

    Lines are separated by ``\\n`` (a ``\\r`` before it belongs to no column);
    a file ending in a newline has one more, empty, line after it.
    """
    lines = text.split("\n")
    if not 1 <= line <= len(lines):
        raise ValueError(f"line {line} is outside the file (it has lines 1..{len(lines)})")
    content = lines[line - 1].removesuffix("\r")
    if not 1 <= col <= len(content) + 1:
        raise ValueError(f"column {col} is outside line {line} (columns 1..{len(content) + 1})")
    offset = sum(len(lines[i]) + 1 for i in range(line - 1)) + col - 1
    return text[:offset], text[offset:]


def language_for(filename: str) -> str | None:
    return LANGUAGES.get(Path(filename).suffix.lower())


def _request(args: argparse.Namespace, prefix: str, suffix: str, language: str | None,
             overrides: dict[str, Any] | None = None):
    from engine.types import InfillRequest

    settings = {"max_new_tokens": args.max_new_tokens, "steps": args.steps, "language": language,
                "single_line": bool(getattr(args, "single_line", False))}
    settings.update(overrides or {})
    return InfillRequest(prefix=prefix, suffix=suffix, sampler=args.sampler,
                         threshold=args.threshold, seed=args.seed, refresh=args.refresh, **settings)


def _load(args: argparse.Namespace):
    """The engine, or None after printing a one-line error."""
    try:
        return load_engine_from_args(args, progress=sys.stderr.isatty())
    except Exception as exc:  # noqa: BLE001 - any loading failure is reported in one line
        fail(user_error(exc) or f"cannot load the model: {exc.__class__.__name__}: {exc}")
        return None


def _record(result) -> dict[str, Any]:
    """What one fill cost: the model's forward passes in this process, or for a
    remote server the pieces it streamed (its forward passes are its own)."""
    counted = {"forwards": result.forwards} if result.pieces is None else {"pieces": result.pieces}
    return {"middle": result.middle, "ms": round(result.ms, 3), **counted, "tokens": result.tokens}


def warn_notes(engine: Any, shown: set[str]) -> None:
    """Print once on stderr what the backend found the user must know (``Engine.notes``:
    a remote server that ignores the suffix, ...)."""
    for note in engine.notes():
        if note not in shown:
            shown.add(note)
            print(f"diffill: warning: {note}", file=sys.stderr, flush=True)


# --- JSONL -----------------------------------------------------------------

#: optional request fields and their types (bool is rejected where int is wanted)
_FIELDS: dict[str, tuple[type, ...]] = {
    "suffix": (str,), "max_new_tokens": (int,), "steps": (int, type(None)), "language": (str, type(None)),
    "single_line": (bool,),
}


def _run_jsonl(args: argparse.Namespace, stdin: IO[bytes], stdout: IO[str]) -> int:
    engine = _load(args)
    if engine is None:
        return 1
    shown: set[str] = set()
    try:
        for raw in iter(stdin.readline, b""):
            if not raw.strip():
                continue
            stdout.write(json.dumps(_answer(engine, args, raw)) + "\n")  # ASCII: safe in any locale
            stdout.flush()
            warn_notes(engine, shown)
    except BrokenPipeError:  # the reader went away: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stdout.fileno())
        return 1
    return 0


def _answer(engine: Any, args: argparse.Namespace, raw: bytes) -> dict[str, Any]:
    """The response record for one request line (never raises)."""
    request_id: Any = None
    try:
        try:
            obj = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            return {"error": "line is not UTF-8"}
        except json.JSONDecodeError as exc:
            return {"error": f"invalid JSON: {exc.msg} (column {exc.colno})"}
        if not isinstance(obj, dict):
            return {"error": f"expected a JSON object, got {type(obj).__name__}"}
        request_id = obj.get("id")
        fields = _fields(obj)
        request = _request(args, obj["prefix"], fields.pop("suffix", ""),
                           fields.pop("language", args.language), fields)
        record = _record(engine.infill(request))
    except Exception as exc:  # noqa: BLE001 - one bad line must not stop the stream
        record = {"error": user_error(exc) or f"internal error: {exc.__class__.__name__}: {exc}"}
    if request_id is not None:
        record["id"] = request_id
    return record


def _fields(obj: dict[str, Any]) -> dict[str, Any]:
    """Validated request fields of one JSONL object (``prefix`` is checked, not returned)."""
    if "prefix" not in obj:
        raise ValueError("missing field 'prefix'")
    if not isinstance(obj["prefix"], str):
        raise ValueError(f"'prefix' must be a string, got {_type(obj['prefix'])}")
    fields = {}
    for name, types in _FIELDS.items():
        if name in obj:
            value = obj[name]
            if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
                raise ValueError(f"{name!r} must be {' or '.join(_name(t) for t in types)}, got {_type(value)}")
            fields[name] = value
    return fields


def _type(value: Any) -> str:
    return _name(type(value))


def _name(t: type) -> str:
    return {str: "a string", int: "an integer", type(None): "null", bool: "a boolean",
            float: "a number", list: "an array", dict: "an object"}.get(t, t.__name__)
