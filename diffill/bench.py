"""`diffill bench`: quality (HumanEval-Infilling + held-out split), speed, lsp, soak and context.

``bench quality`` scores pass@1 (programs executed in separate, limited
processes), exact match and edit similarity per subset; ``--oracle`` adds the
oracle-length run (fixed canvas of the true middle's token count) and the gap.
``bench speed`` compares parallel decoding with a one-token-per-step run of the
same model (tokens per forward, latency p50/p95, exact match) and writes a JSON
file and a PNG plot.  ``bench lsp``, ``bench soak`` and ``bench context`` come from
``lsp_server.bench.lsp``, ``lsp_server.bench.soak``, ``lsp_server.bench.context`` and ``lsp_server.bench.gate``.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from diffill.errors import fail, user_error
from diffill.fill import add_sampler_options
from engine.arguments import add_model_options, load_engine_from_args
from lsp_server.bench import context as bench_context
from lsp_server.bench import gate as bench_gate
from lsp_server.bench import lsp as bench_lsp
from lsp_server.bench import soak as bench_soak

#: environment variable naming the HumanEval-Infilling directory (default for --data)
DATA_ENV = "DIFFILL_HUMANEVAL_DIR"
DEFAULT_QUALITY_SUBSETS = "single,multi,random,heldout"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="benchmarks: quality, speed, lsp, soak, context", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    bench = parser.add_subparsers(dest="bench_command", metavar="BENCHMARK")
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])
    _register_quality(bench)
    _register_speed(bench)
    _register_remote_fim(bench)
    bench_lsp.register_bench(bench)
    bench_soak.register_bench(bench)
    bench_context.register_bench(bench)
    bench_gate.register_bench(bench)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=os.environ.get(DATA_ENV) or None, metavar="DIR",
                        help=f"HumanEval-Infilling directory (default: ${DATA_ENV})")
    parser.add_argument("--heldout", type=Path, default=None, metavar="DIR",
                        help="held-out split directory (default: engine/bench/data)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_sampler_options(parser, max_new_tokens=None)
    add_model_options(parser)


def _register_quality(bench: argparse._SubParsersAction) -> None:
    p = bench.add_parser("quality", help="pass@1, exact match, edit similarity per subset",
                         description="pass@1 / exact match / edit similarity on HumanEval-Infilling and the "
                                     "held-out split.  --max-new-tokens defaults per kind "
                                     "(single 32, multi 128, random 64).")
    p.add_argument("--subsets", default=None,
                   help=f"comma-separated: single, multi, random, random-full, heldout-single, heldout-multi, "
                        f"heldout (default: {DEFAULT_QUALITY_SUBSETS}, skipping what is not available)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="at most N cases per subset, evenly spaced")
    p.add_argument("--out", type=Path, default=None, metavar="FILE", help="write results (with every case) as JSON")
    p.add_argument("--oracle", action="store_true",
                   help="also run with the oracle length (fixed canvas of the true middle's size) and report the gap")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per executed program (default 10)")
    p.add_argument("--memory-mb", type=int, default=1024, help="memory limit per executed program (default 1024)")
    p.add_argument("--jobs", type=int, default=1, help="programs executed in parallel (default 1)")
    p.add_argument("--alternatives", type=int, default=1, metavar="N",
                   help="middles per case, the primary included (engine.branching); >1 also reports pass@any "
                        "and exact_match@any: any of the middles correct (default 1)")
    _common(p)
    p.set_defaults(func=run_quality)


def _register_speed(bench: argparse._SubParsersAction) -> None:
    p = bench.add_parser("speed", help="tokens per forward and latency vs one token per step",
                         description="Tokens per forward pass and latency p50/p95 for single- and multi-line "
                                     "fills, parallel decoding vs one token per step, same model and process.")
    p.add_argument("--source", default="auto", choices=["auto", "heldout", "humaneval"],
                   help="cases from the held-out split or HumanEval (auto: held-out if present)")
    p.add_argument("--limit", type=int, default=20, metavar="N", help="cases per kind (default 20)")
    p.add_argument("--warmup", type=int, default=2, metavar="N", help="warm-up runs of each decoder (default 2)")
    p.add_argument("--out-dir", type=Path, default=Path("bench-results"), metavar="DIR",
                   help="where speed.json and speed.png go (default bench-results)")
    _common(p)
    p.set_defaults(func=run_speed)


def _register_remote_fim(bench: argparse._SubParsersAction) -> None:
    p = bench.add_parser("remote-fim", help="single-line requests through diffill vs a direct FIM call",
                         description="Single-line requests through diffill's remote llamacpp backend against a "
                                     "direct FIM call (POST /infill, no stop rule) to the same llama-server, same "
                                     "cases, interleaved: generated tokens per request and latency p50/p95.")
    p.add_argument("--limit", type=int, default=40, metavar="N", help="held-out single-line cases (default 40)")
    p.add_argument("--warmup", type=int, default=2, metavar="N", help="warm-up requests of each side (default 2)")
    p.add_argument("--out", type=Path, default=None, metavar="FILE", help="write every case as JSON")
    _common(p)
    p.set_defaults(func=run_remote_fim, backend="llamacpp", max_new_tokens=32)


# --- commands ----------------------------------------------------------------

def run_quality(args: argparse.Namespace) -> int:
    from engine.bench.datasets import parse_subsets
    from engine.bench.execution import Limits
    from engine.bench.quality import QualityOptions
    from engine.bench.quality import run_quality as run
    from engine.bench.report import quality_table, write_json

    try:
        explicit = args.subsets is not None
        names = parse_subsets(args.subsets or DEFAULT_QUALITY_SUBSETS)
        subsets, notes = _load_subsets(names, args, explicit, args.limit)
        settings = _settings(args)
    except ValueError as exc:
        return fail(str(exc))
    engine = _load(args)
    if engine is None:
        return 1
    options = QualityOptions(oracle=args.oracle, jobs=args.jobs,
                             limits=Limits(timeout_s=args.timeout, memory_mb=args.memory_mb))
    result = run(engine, subsets, settings, options, progress=_progress(args))
    result["notes"] = notes + result["notes"]
    print(quality_table(result["summary"]))
    for note in result["notes"]:
        print(f"note: {note}")
    if args.out:
        write_json(_header("quality", engine, settings, args) | {"oracle": args.oracle} | result, args.out)
        print(f"wrote {args.out}")
    return 0


def run_speed(args: argparse.Namespace) -> int:
    from engine.bench.plot import plot_speed, pyplot
    from engine.bench.report import speed_table, write_json
    from engine.bench.speed import run_speed as run
    from engine.extras import MissingExtra

    try:
        pyplot()  # before the run, not after it: the figure is part of the result
    except MissingExtra as exc:
        return fail(str(exc))
    try:
        cases = _speed_cases(args)
        settings = _settings(args)
    except ValueError as exc:
        return fail(str(exc))
    engine = _load(args)
    if engine is None:
        return 1
    result = run(engine, cases, settings, warmup=args.warmup, progress=_progress(args))
    print(speed_table(result["summary"]))
    out_json, out_png = args.out_dir / "speed.json", args.out_dir / "speed.png"
    write_json(_header("speed", engine, settings, args) | result, out_json)
    plot_speed(result["summary"], out_png, title=f"diffill speed: {Path(engine.model_path).name}")
    print(f"wrote {out_json} and {out_png}")
    return 0


def run_remote_fim(args: argparse.Namespace) -> int:
    from engine.bench.datasets import load_subset, spread, subset_path
    from engine.bench.remote_fim import run_remote_fim as run
    from engine.bench.remote_fim import table
    from engine.bench.report import write_json

    if args.backend != "llamacpp" or not args.url:
        return fail("bench remote-fim compares with llama-server's /infill: give --backend llamacpp --url URL")
    path = subset_path("heldout-single", args.data, args.heldout)
    if path is None or not path.is_file():
        return fail(f"no held-out single-line cases at {path}")
    cases = spread(load_subset("heldout-single", path), args.limit)
    engine = _load(args)
    if engine is None:
        return 1
    result = run(engine, args.url, cases, args.max_new_tokens, warmup=args.warmup, progress=_progress(args))
    print(table(result))
    if args.out:
        write_json({"benchmark": "remote-fim", "url": args.url, "engine": engine.describe(), **result}, args.out)
        print(f"wrote {args.out}")
    return 0


# --- helpers -------------------------------------------------------------------

def _settings(args: argparse.Namespace):
    from engine.bench.runs import RunSettings

    for name in ("max_new_tokens", "steps", "refresh"):
        value = getattr(args, name)
        if value is not None and not 1 <= value <= 4096:
            raise ValueError(f"--{name.replace('_', '-')} must be in 1..4096, got {value}")
    alternatives = getattr(args, "alternatives", 1)
    if not 1 <= alternatives <= 8:
        raise ValueError(f"--alternatives must be in 1..8, got {alternatives}")
    return RunSettings(max_new_tokens=args.max_new_tokens, steps=args.steps, sampler=args.sampler,
                       threshold=args.threshold, seed=args.seed, refresh=args.refresh, alternatives=alternatives)


def _load_subsets(names: list[str], args: argparse.Namespace, explicit: bool, limit: int | None):
    """``{subset: cases}`` and notes about skipped subsets; a requested subset
    that is unavailable is an error, a default one is skipped."""
    from engine.bench.datasets import DatasetError, load_subset, spread, subset_path

    subsets, notes = {}, []
    for name in names:
        path = subset_path(name, args.data, args.heldout)
        if path is None or not path.is_file():
            why = f"pass --data DIR (or set ${DATA_ENV})" if path is None else f"{path} does not exist"
            if explicit:
                raise DatasetError(f"subset {name!r} is not available: {why}")
            notes.append(f"skipped {name}: {why}")
            continue
        subsets[name] = spread(load_subset(name, path), limit)
    if not subsets:
        raise DatasetError("no benchmark data: " + "; ".join(notes))
    return subsets, notes


def _speed_cases(args: argparse.Namespace) -> dict[str, list]:
    """Single- and multi-line cases from the held-out split or HumanEval."""
    from engine.bench.datasets import DatasetError, load_subset, spread, subset_path

    sources = {"heldout": ("heldout-single", "heldout-multi"), "humaneval": ("single", "multi")}
    order = ["heldout", "humaneval"] if args.source == "auto" else [args.source]
    problems = []
    for source in order:
        found = [subset_path(n, args.data, args.heldout) for n in sources[source]]
        missing = [str(p) if p else f"--data DIR (or ${DATA_ENV})" for p in found if p is None or not p.is_file()]
        if missing:
            problems.append(f"{source}: missing {', '.join(missing)}")
            continue
        paths = [p for p in found if p is not None]
        return {kind: spread(load_subset(name, path), args.limit)
                for kind, name, path in zip(("single", "multi"), sources[source], paths, strict=True)}
    raise DatasetError("no speed benchmark cases: " + "; ".join(problems))


def _load(args: argparse.Namespace):
    try:
        return load_engine_from_args(args, progress=not args.no_progress and sys.stderr.isatty())
    except Exception as exc:  # noqa: BLE001 - one line, no traceback
        fail(user_error(exc) or f"cannot load the model: {exc.__class__.__name__}: {exc}")
        return None


def _progress(args: argparse.Namespace):
    if args.no_progress:
        return None
    from tqdm import tqdm

    return lambda total, label: tqdm(total=total, desc=label, unit="case", file=sys.stderr,
                                     dynamic_ncols=True, leave=False, disable=None)


def _header(command: str, engine: Any, settings: Any, args: argparse.Namespace) -> dict[str, Any]:
    from dataclasses import asdict

    return {"benchmark": command, "engine": engine.describe(), "settings": asdict(settings),
            "limit": args.limit}
