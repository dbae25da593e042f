"""`diffill bench context`: repository context measured on real installed code.

Four parts (``--parts``, default all), in one process (no server: the context
service is what a completion calls on the event loop); the JSON is written
again after every part and every quality case, with ``"complete": false``
until the run ends, so an interrupted run keeps what it measured:
  * index: a workspace of about ``--files`` source files made of whole package
    directories of site-packages (or ``--root``), wall time of the background
    build (nothing else running), files, definitions and the resident memory it
    added to this process; target < 60 s for 5,000 files;
  * gather: ``gather`` at ``--sites`` random cursor sites in that workspace, each
    in a newly opened file with four other newly opened files (opened as the
    server does on ``didOpen``, untimed but reported), token counts from the
    loaded model's tokenizer; p50/p95 ms, target p95 <= 10 ms;
  * load: keystroke completions (``engine.infill``) every ``--interval`` seconds
    before, during and after a second build of the same workspace; target: no
    more than 10 % slower during the build (``context_load``);
  * quality: the cross-file infill set (``context_quality``), context off and on.
"""
from __future__ import annotations

import argparse
import os
import random
import sysconfig
import time
from pathlib import Path
from typing import Any

from engine.bench.report import write_json
from lsp_server.bench.latency import summary
from lsp_server.bench.procstat import read_rss_kb
from lsp_server.context.files import read_source
from lsp_server.context.index import source_files
from lsp_server.context.privacy import Rules
from lsp_server.context.service import ContextService
from lsp_server.documents.store import Document

TARGET_INDEX_S = 60.0
TARGET_GATHER_P95_MS = 10.0
PARTS = ("index", "gather", "load", "quality")
#: installed packages the bundled model never trained on (engine/models/diffill-tiny/corpus_licenses.json)
UNSEEN_PACKAGES = ("mypy", "mypyc", "hypothesis", "sortedcontainers", "pathspec")


def register_bench(bench: argparse._SubParsersAction) -> None:
    p = bench.add_parser("context", help="repository context: indexing time, assembly latency, completions "
                         "while indexing, cross-file quality",
                         description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=None, help="directory of packages (default: site-packages)")
    p.add_argument("--files", type=int, default=5000, help="source files in the workspace (default 5000)")
    p.add_argument("--parts", default=",".join(PARTS), help=f"parts to run (default {','.join(PARTS)})")
    p.add_argument("--sites", type=int, default=300, help="cursor sites timed (default 300)")
    p.add_argument("--interval", type=float, default=0.5, help="seconds between completions in the load part")
    p.add_argument("--per-phase", type=int, default=30, help="completions timed before and after the build")
    p.add_argument("--cases", type=int, default=100, help="cross-file infill cases (default 100)")
    p.add_argument("--packages", default=",".join(UNSEEN_PACKAGES), help="packages for the infill cases")
    p.add_argument("--max-tokens", type=int, default=256, help="contextMaxTokens (default 256)")
    p.add_argument("--model", default=None, help="model (default: the bundled model)")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    p.add_argument("--max-new-tokens", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("bench-results/context.json"), help="JSON output path")
    p.set_defaults(func=run_context_bench)


def workspace(root: Path, files: int) -> list[str]:
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


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def measure_index(folders: list[str]) -> tuple[ContextService, dict[str, Any]]:
    service = ContextService()
    rss0 = read_rss_kb(os.getpid())
    t0 = time.perf_counter()
    files = service.start(folders, [], dict).result()
    seconds = time.perf_counter() - t0
    rss1 = read_rss_kb(os.getpid())
    stats = service.index.stats()
    print(f"indexed {files} files in {seconds:.1f} s: {stats['definitions']} definitions, "
          f"+{(rss1 - rss0) / 1024:.0f} MiB in this process", flush=True)
    return service, {"seconds": round(seconds, 2), "walked": files, **stats, "rssMiB": round((rss1 - rss0) / 1024, 1),
                     "workerProcess": service.indexer.worker.running, "target_s": TARGET_INDEX_S}


def measure_gather(service: ContextService, engine: Any, settings: Any, sites: int,
                   rng: random.Random) -> dict[str, Any]:
    """``gather`` at random sites, each with five newly opened documents."""
    all_files = [p for p in source_files(service.rules) if p.endswith(".py")]
    timings: list[float] = []
    opening: list[float] = []
    pieces = 0
    for _ in range(sites):
        doc = None
        while doc is None or len(doc.text) < 200:
            doc = _document(rng.choice(all_files))
        others = [d for d in (_document(rng.choice(all_files)) for _ in range(4)) if d is not None]
        docs = {d.uri: d for d in [doc, *others]}
        for d in docs.values():  # what didOpen does, before any request
            t = time.perf_counter()
            service.document_changed(d, None)
            opening.append((time.perf_counter() - t) * 1000)
        service.indexer.wait()
        offset = rng.randrange(len(doc.text) // 4, len(doc.text))
        doc.starts  # noqa: B018 - the server maps the request's position with it before gathering
        t = time.perf_counter()
        packed = service.for_settings(doc, offset, docs, settings, engine)
        timings.append((time.perf_counter() - t) * 1000)
        pieces += len(packed.pieces)
    opened = summary(opening)
    out: dict[str, Any] = {**summary(timings), "piecesPerSite": round(pieces / max(sites, 1), 2), "didOpenMs": opened,
           "target_p95_ms": TARGET_GATHER_P95_MS}
    print(f"gather at {sites} sites: p50 {out['p50']:.2f} ms, p95 {out['p95']:.2f} ms, "
          f"{out['piecesPerSite']} pieces per site; didOpen p95 {opened['p95']:.2f} ms", flush=True)
    return out


def run_context_bench(args: argparse.Namespace) -> int:
    """Entry point for `diffill bench context`; returns an exit code."""
    from engine import load_engine
    from lsp_server.bench.context_load import completion_requests, run_load
    from lsp_server.bench.context_quality import run_quality
    from lsp_server.config import Settings

    parts = [p for p in args.parts.split(",") if p]
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise SystemExit(f"unknown parts: {', '.join(sorted(unknown))} (known: {', '.join(PARTS)})")
    rng = random.Random(args.seed)
    root = args.root or Path(sysconfig.get_paths()["purelib"])
    folders = workspace(root, args.files)
    engine = load_engine(args.model, device=args.device)
    settings = Settings(context_max_tokens=args.max_tokens, max_new_tokens=args.max_new_tokens)
    loads: dict[str, Any] = {"start": _load_average()}
    result: dict[str, Any] = {
        "complete": False, "machine": os.uname().nodename, "cpus": os.cpu_count(), "model": engine.describe(),
        "args": {k: str(v) for k, v in vars(args).items() if k != "func"},
        "workspace": {"root": str(root), "folders": len(folders)}, "loadAverage": loads,
    }

    def save(part: str, value: Any) -> None:
        result[part] = value
        loads[part] = _load_average()
        write_json(result, args.out)

    save("started", time.strftime("%Y-%m-%dT%H:%M:%S"))
    print(f"{len(folders)} package directories, model loaded; writing {args.out} as parts finish", flush=True)
    service = None
    try:
        if "index" in parts or "gather" in parts:
            service, index = measure_index(folders)
            save("index", index)
        if "gather" in parts and service is not None:
            save("gather", {**measure_gather(service, engine, settings, args.sites, rng), "maxTokens": args.max_tokens})
        if service is not None:
            service.shutdown()
            service = None
        if "load" in parts:
            files = [p for f in folders for p in source_files(Rules([f])) if p.endswith(".py")]
            requests = completion_requests(files, 10, args.max_new_tokens, rng)
            load = run_load(folders, engine, requests, args.interval, args.per_phase, lambda v: save("load", v))
            save("load", load)
            print(f"completions before/during/after the build: p50 {load['before']['p50']:.0f} / "
                  f"{load['during']['p50']:.0f} / {load['after']['p50']:.0f} ms, slowdown p50 "
                  f"{load['slowdownP50Pct']} %, mean {load['slowdownMeanPct']} %; the build took "
                  f"{load['indexSecondsUnderCompletions']} s alongside", flush=True)
        if "quality" in parts and args.cases:
            q = run_quality(root, args.packages, args.cases, engine, settings, rng, lambda v: save("quality", v))
            save("quality", q)
            print(f"{q['cases']} cross-file cases ({q['definitionSent']}% with the definition sent): exact match "
                  f"off {q['off']['exactMatch']}% / on {q['on']['exactMatch']}%, middle starts with the called "
                  f"name off {q['off']['namesCall']}% / on {q['on']['namesCall']}%", flush=True)
    finally:
        if service is not None:
            service.shutdown()
    save("complete", True)
    print(f"wrote {args.out}")
    return 0
