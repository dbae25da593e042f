"""`diffill bench context`: repository context measured on real installed code.

Three measurements, in one process (no server: the context service is what a
completion calls on the event loop):
  * indexing: a workspace of about ``--files`` source files made of whole
    package directories of site-packages (or ``--root``), wall time, files,
    definitions and the resident memory it added; target < 60 s for 5,000 files;
  * assembling: ``gather`` at ``--sites`` cursor sites in that workspace, each
    with four other files open, token counts from the loaded model's tokenizer;
    p50/p95 ms, target p95 <= 10 ms;
  * quality: a cross-file infill set from packages the bundled model was not
    trained on (``--packages``): the middle is the rest of a line from a call of
    a name defined in another file of the same package and not in the current
    file; exact match (first line, trimmed) and whether the middle names the
    called function, with context on and off, and the engine latency of each.
Writes JSON.
"""
from __future__ import annotations

import argparse
import os
import random
import re
import sysconfig
import time
from pathlib import Path
from typing import Any

from engine.bench.report import write_json
from lsp_server.bench.latency import summary
from lsp_server.bench.procstat import read_rss_kb
from lsp_server.context.index import read_source, source_files
from lsp_server.context.privacy import Rules
from lsp_server.context.service import ContextService
from lsp_server.documents.store import Document

TARGET_INDEX_S = 60.0
TARGET_GATHER_P95_MS = 10.0
#: installed packages the bundled model never trained on (engine/models/diffill-tiny/corpus_licenses.json)
UNSEEN_PACKAGES = ("mypy", "mypyc", "hypothesis", "sortedcontainers", "pathspec")
_CALL = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]{3,})\(")


def register_bench(bench: argparse._SubParsersAction) -> None:
    p = bench.add_parser("context", help="repository context: indexing time, assembly latency, cross-file quality",
                         description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=None, help="directory of packages (default: site-packages)")
    p.add_argument("--files", type=int, default=5000, help="source files in the workspace (default 5000)")
    p.add_argument("--sites", type=int, default=300, help="cursor sites timed (default 300)")
    p.add_argument("--cases", type=int, default=100, help="cross-file infill cases (default 100; 0: skip)")
    p.add_argument("--packages", default=",".join(UNSEEN_PACKAGES), help="packages for the infill cases")
    p.add_argument("--max-tokens", type=int, default=256, help="contextMaxTokens (default 256)")
    p.add_argument("--model", default=None, help="model (default: the bundled model)")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    p.add_argument("--max-new-tokens", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("bench-results/context.json"), help="JSON output path")
    p.set_defaults(func=run_context_bench)


def _workspace(root: Path, files: int) -> list[str]:
    """Whole package directories of ``root``, in name order, until ``files`` source files."""
    folders: list[str] = []
    total = 0
    for entry in sorted(root.iterdir()):
        if total >= files:
            break
        if entry.is_dir() and not entry.name.endswith((".dist-info", ".libs")) and entry.name != "__pycache__":
            n = sum(1 for _ in source_files(Rules([str(entry)])))
            if n:
                folders.append(str(entry))
                total += n
    return folders


def _document(path: str, version: int = 1) -> Document | None:
    text = read_source(path, None)
    return Document(Path(path).as_uri(), text, version, "python") if text else None


def _cases(service: ContextService, folders: list[str], count: int, rng: random.Random) -> list[dict[str, Any]]:
    """Cursor sites before a call of a name defined in exactly one other file of
    the same package and not defined in the current file."""
    files = [p for folder in folders for p in source_files(Rules([folder])) if p.endswith(".py")]
    rng.shuffle(files)
    cases: list[dict[str, Any]] = []
    for path in files:
        if len(cases) >= count:
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
            cases.append({"path": path, "line": i, "name": name, "offset": start,
                          "prefix": text[:start], "middle": text[start:end], "suffix": text[end:], "text": text})
    return cases


def run_context_bench(args: argparse.Namespace) -> int:
    """Entry point for `diffill bench context`; returns an exit code."""
    from engine import InfillRequest, load_engine
    from engine.types import ContextPiece
    from lsp_server.config import Settings

    rng = random.Random(args.seed)
    root = args.root or Path(sysconfig.get_paths()["purelib"])
    folders = _workspace(root, args.files)
    engine = load_engine(args.model, device=args.device)
    settings = Settings(context_max_tokens=args.max_tokens, max_new_tokens=args.max_new_tokens)
    service = ContextService()
    rss0 = read_rss_kb(os.getpid())
    t0 = time.perf_counter()
    files = service.start(folders, [], dict).result()
    index_s = time.perf_counter() - t0
    rss1 = read_rss_kb(os.getpid())
    stats = service.index.stats()
    print(f"{len(folders)} package directories, model loaded", flush=True)
    print(f"indexed {files} files in {index_s:.1f} s: {stats['definitions']} definitions, "
          f"+{(rss1 - rss0) / 1024:.0f} MiB")

    all_files = [p for p in source_files(service.rules) if p.endswith(".py")]
    timings: list[float] = []
    pieces_per_site: list[int] = []
    for _ in range(args.sites):
        doc = None
        while doc is None or len(doc.text) < 200:
            doc = _document(rng.choice(all_files))
        others = [d for d in (_document(rng.choice(all_files)) for _ in range(4)) if d is not None]
        docs = {d.uri: d for d in [doc, *others]}
        offset = rng.randrange(len(doc.text) // 4, len(doc.text))
        t = time.perf_counter()
        packed = service.for_settings(doc, offset, docs, settings, engine)
        timings.append((time.perf_counter() - t) * 1000)
        pieces_per_site.append(len(packed.pieces))
    gather = summary(timings)
    print(f"gather at {args.sites} sites: p50 {gather['p50']:.2f} ms, p95 {gather['p95']:.2f} ms, "
          f"{sum(pieces_per_site) / max(len(pieces_per_site), 1):.1f} pieces per site")

    quality: dict[str, Any] = {}
    if args.cases:
        unseen = [str(root / p) for p in args.packages.split(",") if (root / p).is_dir()]
        qservice = ContextService()
        t = time.perf_counter()
        qservice.start(unseen, [], dict).result()
        cases = _cases(qservice, unseen, args.cases, rng)
        print(f"{len(cases)} cross-file cases from {len(unseen)} packages in {time.perf_counter() - t:.0f} s",
              flush=True)
        rows = []
        for n_case, case in enumerate(cases, 1):
            doc = Document(Path(case["path"]).as_uri(), case["text"], 1, "python")
            packed = qservice.for_settings(doc, case["offset"], {doc.uri: doc}, settings, engine, note=False)
            defined = any(p.reason == f"definition of {case['name']}" for p in packed.pieces)
            row: dict[str, Any] = {"path": case["path"], "line": case["line"], "name": case["name"],
                                   "middle": case["middle"], "definitionSent": defined,
                                   "contextTokens": packed.used}
            for mode, pieces in (("off", ()), ("on", tuple(ContextPiece(p.path, p.text) for p in packed.pieces))):
                req = InfillRequest(prefix=case["prefix"], suffix=case["suffix"], language="python",
                                    max_new_tokens=args.max_new_tokens, context=pieces,
                                    path=packed.path if pieces else None)
                res = engine.infill(req)
                got = res.middle.split("\n")[0].strip()
                row[mode] = {"middle": res.middle, "exact": got == case["middle"].strip(),
                             "namesCall": got.startswith(case["name"]), "ms": round(res.ms, 1)}
            rows.append(row)
            print(f"case {n_case}/{len(cases)}: {case['name']} exact off/on {row['off']['exact']}/"
                  f"{row['on']['exact']}, engine ms {row['off']['ms']}/{row['on']['ms']}", flush=True)
        n = max(len(rows), 1)
        quality = {"cases": len(rows), "packages": args.packages,
                   "definitionSent": round(100 * sum(r["definitionSent"] for r in rows) / n, 1)}
        for mode in ("off", "on"):
            quality[mode] = {"exactMatch": round(100 * sum(r[mode]["exact"] for r in rows) / n, 1),
                             "namesCall": round(100 * sum(r[mode]["namesCall"] for r in rows) / n, 1),
                             "ms": summary([r[mode]["ms"] for r in rows])}
        quality["rows"] = rows
        print(f"{len(rows)} cross-file cases ({quality['definitionSent']}% with the definition sent): "
              f"exact match off {quality['off']['exactMatch']}% / on {quality['on']['exactMatch']}%, "
              f"middle starts with the called name off {quality['off']['namesCall']}% / on "
              f"{quality['on']['namesCall']}%, engine p50 off {quality['off']['ms']['p50']} / on "
              f"{quality['on']['ms']['p50']} ms")
    result = {
        "machine": os.uname().nodename, "cpus": os.cpu_count(), "model": engine.describe(),
        "workspace": {"root": str(root), "folders": len(folders), "files": files, **stats},
        "index": {"seconds": round(index_s, 2), "rssMiB": round((rss1 - rss0) / 1024, 1),
                  "target_s": TARGET_INDEX_S},
        "gather": {**gather, "target_p95_ms": TARGET_GATHER_P95_MS, "maxTokens": args.max_tokens},
        "quality": quality,
    }
    write_json(result, args.out)
    print(f"wrote {args.out}")
    service.shutdown()
    return 0
