"""The quality part of `diffill bench context`: a cross-file infill set from
installed packages the bundled model was not trained on.  The middle is the
rest of a line from a call of a name defined in exactly one other file of the
same package and not in the current file; each case runs with context off and
on (exact match of the first line, whether the middle names the called
function, engine latency).  Rows are handed to ``report`` as they finish, so an
interrupted run keeps what it measured.
"""
from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsp_server.bench.latency import summary
from lsp_server.context.files import read_source
from lsp_server.context.index import source_files
from lsp_server.context.privacy import Rules
from lsp_server.context.service import ContextService
from lsp_server.documents.store import Document

if TYPE_CHECKING:
    from engine import Engine
    from lsp_server.config import Settings

_CALL = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]{3,})\(")


def cases(service: ContextService, folders: list[str], count: int, rng: random.Random) -> list[dict[str, Any]]:
    """Cursor sites before a call of a name defined in exactly one other file of
    the same package and not defined in the current file."""
    files = [p for folder in folders for p in source_files(Rules([folder])) if p.endswith(".py")]
    rng.shuffle(files)
    out: list[dict[str, Any]] = []
    for path in files:
        if len(out) >= count:
            break
        text = read_source(path, None)
        if not text:
            continue
        package = next(f for f in folders if path.startswith(f + os.sep))
        own = service.index.names_in(path)
        lines = text.splitlines(keepends=True)
        sites = []
        for i, line in enumerate(lines):
            if i < 10 or line.lstrip().startswith(("#", "def ", "class ", "import ", "from ", "@")):
                continue
            for m in _CALL.finditer(line):
                name = m.group(1)
                defs = {d.path for d in service.index.lookup(name)}
                if name in own or len(defs) != 1 or path in defs or not next(iter(defs)).startswith(package):
                    continue
                sites.append((i, m.start(), name))
        if sites:
            i, col, name = rng.choice(sites)
            start = sum(len(x) for x in lines[:i]) + col
            end = sum(len(x) for x in lines[: i + 1]) - (1 if lines[i].endswith("\n") else 0)
            out.append({"path": path, "line": i, "name": name, "offset": start,
                        "prefix": text[:start], "middle": text[start:end], "suffix": text[end:], "text": text})
    return out


def run_quality(root: Path, packages: str, count: int, engine: Engine, settings: Settings,
                rng: random.Random, report: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """The cross-file cases with context off and on; ``report`` gets the partial
    summary after every case."""
    from engine import InfillRequest
    from engine.types import ContextPiece

    unseen = [str(root / p) for p in packages.split(",") if (root / p).is_dir()]
    service = ContextService()
    try:
        t = time.perf_counter()
        service.start(unseen, [], dict).result()
        found = cases(service, unseen, count, rng)
        print(f"{len(found)} cross-file cases from {len(unseen)} packages in {time.perf_counter() - t:.0f} s",
              flush=True)
        rows: list[dict[str, Any]] = []
        for n_case, case in enumerate(found, 1):
            doc = Document(Path(case["path"]).as_uri(), case["text"], 1, "python")
            packed = service.for_settings(doc, case["offset"], {doc.uri: doc}, settings, engine, note=False)
            row: dict[str, Any] = {"path": case["path"], "line": case["line"], "name": case["name"],
                                   "middle": case["middle"], "contextTokens": packed.used,
                                   "definitionSent": any(p.reason == f"definition of {case['name']}"
                                                         for p in packed.pieces)}
            for mode, pieces in (("off", ()), ("on", tuple(ContextPiece(p.path, p.text) for p in packed.pieces))):
                req = InfillRequest(prefix=case["prefix"], suffix=case["suffix"], language="python",
                                    max_new_tokens=settings.max_new_tokens, context=pieces,
                                    path=packed.path if pieces else None)
                res = engine.infill(req)
                got = res.middle.split("\n")[0].strip()
                row[mode] = {"middle": res.middle, "exact": got == case["middle"].strip(),
                             "namesCall": got.startswith(case["name"]), "ms": round(res.ms, 1)}
            rows.append(row)
            print(f"case {n_case}/{len(found)}: {case['name']} exact off/on {row['off']['exact']}/"
                  f"{row['on']['exact']}, engine ms {row['off']['ms']}/{row['on']['ms']}", flush=True)
            report(_summary(rows, packages, complete=n_case == len(found)))
        return _summary(rows, packages, complete=True)
    finally:
        service.shutdown()


def _summary(rows: list[dict[str, Any]], packages: str, *, complete: bool) -> dict[str, Any]:
    n = max(len(rows), 1)
    out: dict[str, Any] = {"cases": len(rows), "complete": complete, "packages": packages,
                           "definitionSent": round(100 * sum(r["definitionSent"] for r in rows) / n, 1)}
    for mode in ("off", "on"):
        out[mode] = {"exactMatch": round(100 * sum(r[mode]["exact"] for r in rows) / n, 1),
                     "namesCall": round(100 * sum(r[mode]["namesCall"] for r in rows) / n, 1),
                     "ms": summary([r[mode]["ms"] for r in rows])}
    out["rows"] = rows
    return out
