"""`diffill bench lsp --files DIR`: keystroke latency as a user meets it.

The server runs with its default settings (only --model/--device/--dtype/
--threads and ``--set KEY=JSON`` overrides when given).  For each of ``--count`` real source files of DIR
(evenly spread over the sorted list), one cursor site in the middle of a code
line is chosen; the line is cut at the cursor, as while typing it, and the
rest of the file stays below.  Two measurements per site (the automatic one
under an extra comment line, so that neither is answered from the cache):

* invoked: the document is opened and an inline completion is asked for
  explicitly (no debounce); latency = request sent -> answer parsed;
* automatic: the last ``TYPED`` characters before the cursor are typed one by
  one, ``--typing-ms`` apart, each followed by an automatic inline-completion
  request as VS Code sends them (the previous one is cancelled when the next
  key comes); latency = last keystroke -> answer parsed, debounce included.

``--load N`` keeps N other processes spinning on the CPU during the run (a
build or a browser).  The answer is also scored against the text that was cut
(first line exact match), so speed changes can be read next to quality.
Each measurement follows one on another file (``interleaved``), so no request
starts from keys and values computed for the same text.  Results are written
as JSON after every site, so an interrupted run keeps what it measured.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.bench.report import write_json
from lsp_server.bench.client import BenchClient, server_options, shutdown
from lsp_server.bench.latency import summary

#: characters typed before the automatic request that is measured
TYPED = 3
#: files outside this size range are skipped (empty stubs, generated tables)
MIN_BYTES, MAX_BYTES = 2_000, 200_000
TARGETS = {"invoked_p50_ms": 120.0, "invoked_p95_ms": 250.0, "automatic_p50_ms": 220.0}


@dataclass(frozen=True)
class Site:
    """A cursor in a real file: ``prefix`` ends at the cursor, ``truth`` is the
    rest of that line (cut away), ``suffix`` starts at the line's end."""

    path: Path
    prefix: str
    truth: str
    suffix: str

    def text(self) -> str:
        return self.prefix + self.suffix

    def headed(self, header: str) -> Site:
        """The same site under a comment line: a different prefix, so that the
        server's cache never answers one measurement with another's result."""
        return Site(self.path, header + self.prefix, self.truth, self.suffix)

    def position(self, prefix: str | None = None) -> tuple[int, int]:
        before = self.prefix if prefix is None else prefix
        line = before.count("\n")
        return line, len(before) - (before.rfind("\n") + 1)


def pick_files(root: Path, count: int, suffix: str = ".py") -> list[Path]:
    """``count`` files of ``root`` (recursively) within the size range, evenly spread."""
    files = sorted(p for p in root.rglob(f"*{suffix}") if p.is_file() and MIN_BYTES <= p.stat().st_size <= MAX_BYTES)
    if not files:
        raise ValueError(f"no {suffix} files of {MIN_BYTES}-{MAX_BYTES} bytes under {root}")
    if len(files) <= count:
        return files
    return [files[round(i * (len(files) - 1) / max(count - 1, 1))] for i in range(count)]


def site_in(path: Path) -> Site | None:
    """The code line nearest the file's middle with at least 12 characters of
    code, cut in its middle (ASCII lines only: positions are UTF-16 in LSP)."""
    text = path.read_text(encoding="utf-8", errors="replace").replace("\r\n", "\n")
    lines = text.split("\n")
    middle = len(lines) // 2
    for distance in range(len(lines)):
        for index in (middle + distance, middle - distance):
            if not 0 <= index < len(lines):
                continue
            line = lines[index]
            body = line.strip()
            if len(body) < 12 or body.startswith(("#", '"', "'")) or not line.isascii():
                continue
            indent = len(line) - len(line.lstrip())
            cut = indent + max(TYPED + 1, len(body) // 2)
            start = sum(len(x) + 1 for x in lines[:index])
            return Site(path, text[:start + cut], line[cut:], text[start + len(line):])
    return None


@contextlib.contextmanager
def cpu_load(processes: int) -> Iterator[None]:
    """``processes`` busy loops for the duration (the competing load)."""
    workers = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(processes)]
    for w in workers:
        w.start()
    try:
        yield
    finally:
        for w in workers:
            w.terminate()
            w.join()


def _spin() -> None:
    while True:
        pass


def overrides(pairs: list[str]) -> dict[str, Any]:
    """``KEY=JSON`` pairs as settings (a bare word that is not JSON is a string)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {pair!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def first_lines(items: Any) -> list[str]:
    """The first line of each inline item's text, best first (empty: no suggestion)."""
    out = []
    for item in getattr(items, "items", items) or []:
        text = item.insert_text if isinstance(item.insert_text, str) else item.insert_text.value
        out.append(text.split("\n", 1)[0])
    return out


def first_line(items: Any) -> str | None:
    """The first line of the first inline item's text (None: no suggestion)."""
    lines = first_lines(items)
    return lines[0] if lines else None


def sent_confidence(items: Any) -> tuple[float | None, list[float]]:
    """The first item's confidence and its tokens' probabilities, as the server sent them
    (its command argument: ``confidence`` and ``spans``)."""
    items = getattr(items, "items", items) or []
    command = items[0].command if items else None
    argument = command.arguments[0] if command and command.arguments else None
    if not isinstance(argument, dict):
        return None, []
    value = argument.get("confidence")
    spans = argument.get("spans") or []
    return (float(value) if isinstance(value, (int, float)) else None,
            [float(s[2]) for s in spans if isinstance(s, list) and len(s) == 3])


class RealFilesRun:
    """One benchmark run: a server, its client, and the rows measured so far."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.c = BenchClient()
        self.types = self.c.types
        self.rows: list[dict[str, Any]] = []
        self.version = 0
        self.sent = 0

    def _open(self, uri: str, text: str) -> None:
        t = self.types
        self.version += 1
        self.c.client.text_document_did_open(t.DidOpenTextDocumentParams(text_document=t.TextDocumentItem(
            uri=uri, language_id="python", version=self.version, text=text)))

    def _close(self, uri: str) -> None:
        t = self.types
        self.c.client.text_document_did_close(t.DidCloseTextDocumentParams(
            text_document=t.TextDocumentIdentifier(uri=uri)))

    def _request(self, uri: str, position: tuple[int, int], automatic: bool) -> tuple[str, asyncio.Future]:
        """Send one inline-completion request; its id (to cancel it) and its answer."""
        t = self.types
        kind = t.InlineCompletionTriggerKind.Automatic if automatic else t.InlineCompletionTriggerKind.Invoked
        params = t.InlineCompletionParams(text_document=t.TextDocumentIdentifier(uri=uri),
                                          position=t.Position(*position),
                                          context=t.InlineCompletionContext(trigger_kind=kind))
        self.sent += 1
        msg_id = f"bench-{self.sent}"
        future = self.c.client.protocol.send_request(t.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id=msg_id)
        return msg_id, asyncio.wrap_future(future)

    def _cancel(self, msg_id: str, answer: asyncio.Future) -> None:
        """What VS Code does with the previous request at the next key: $/cancelRequest."""
        self.c.client.protocol.notify(self.types.CANCEL_REQUEST, self.types.CancelParams(id=msg_id))
        answer.add_done_callback(lambda f: f.cancelled() or f.exception())  # its error is expected

    async def invoked(self, n: int, site: Site) -> tuple[float, Any]:
        """An invoked request at ``site``: its latency and answer (up to ``alternatives`` items)."""
        uri = f"file:///diffill-bench/invoked/{n}/{site.path.name}"
        self._open(uri, site.text())
        t0 = time.perf_counter()
        _, pending = self._request(uri, site.position(), automatic=False)
        answer = await pending
        ms = (time.perf_counter() - t0) * 1000.0
        self._close(uri)
        return ms, answer

    async def automatic(self, n: int, site: Site) -> tuple[float, str | None]:
        """Type the last ``TYPED`` characters; the last request's latency from its key."""
        t = self.types
        uri = f"file:///diffill-bench/automatic/{n}/{site.path.name}"
        start = site.prefix[:-TYPED]
        self._open(uri, start + site.suffix)
        pending: tuple[str, asyncio.Future] | None = None
        typed = start
        t0 = 0.0
        for char in site.prefix[-TYPED:]:
            line, col = site.position(typed)
            self.version += 1
            if pending is not None and not pending[1].done():
                self._cancel(*pending)
            self.c.client.text_document_did_change(t.DidChangeTextDocumentParams(
                text_document=t.VersionedTextDocumentIdentifier(uri=uri, version=self.version),
                content_changes=[t.TextDocumentContentChangePartial(
                    range=t.Range(start=t.Position(line, col), end=t.Position(line, col)), text=char)]))
            typed += char
            t0 = time.perf_counter()
            pending = self._request(uri, site.position(typed), automatic=True)
            if len(typed) < len(site.prefix):
                await asyncio.sleep(self.args.typing_ms / 1000.0)
        assert pending is not None
        answer = await pending[1]
        ms = (time.perf_counter() - t0) * 1000.0
        self._close(uri)
        return ms, first_line(answer)


def interleaved(sites: list[Site]) -> Iterator[tuple[int, Site, str]]:
    """The order of the measurements: invoked 0, then invoked n and automatic n-1, then the last automatic.

    Why not invoked n and automatic n back to back: the engine may start a request
    from the keys and values of the last finished one, and the invoked request
    leaves exactly the text the typing ends on, a base no typist has.  With this
    order each measurement follows one on another file, as when a user starts
    typing somewhere new.
    """
    for n, site in enumerate(sites):
        yield n, site, "invoked"
        if n > 0:
            yield n - 1, sites[n - 1], "automatic"
    if sites:
        yield len(sites) - 1, sites[-1], "automatic"


def _score(answer: Any, truth: str) -> dict[str, Any]:
    """The invoked answer against the rest of the line: its first suggestion (exact match, edit
    similarity), the model's confidence in it, and whether any of the suggestions is exact."""
    from engine.bench.metrics import edit_similarity

    lines = first_lines(answer)
    first = lines[0] if lines else None
    confidence, probabilities = sent_confidence(answer)
    return {"invoked": first, "alternatives": lines[1:], "confidence": confidence, "probabilities": probabilities,
            "suggested": first is not None, "exact": first is not None and first.rstrip() == truth.rstrip(),
            "edit_similarity": None if first is None else round(edit_similarity(first.rstrip(), truth.rstrip()), 4),
            "any_exact": any(line.rstrip() == truth.rstrip() for line in lines)}


def _say(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(message, file=sys.stderr, flush=True)


async def run_real_files(args: argparse.Namespace) -> dict[str, Any]:
    """The whole run; the JSON at ``args.out`` is rewritten after every site."""
    sites = [s for s in (site_in(p) for p in pick_files(args.files, args.count)) if s is not None]
    run = RealFilesRun(args)
    pid = await run.c.start()
    options = server_options(args, **overrides(args.set))
    await run.c.initialize(options)
    result: dict[str, Any] = {"benchmark": "lsp-real-files", "files": str(args.files), "sites": len(sites),
                              "load_processes": args.load, "typing_ms": args.typing_ms, "settings": options,
                              "pid": pid, "error": None, "targets": TARGETS}
    with cpu_load(args.load):
        t_load = time.perf_counter()
        for i, site in enumerate(sites[:max(args.warmup, 1)]):  # the model loads on the first request
            await run.invoked(-1 - i, site.headed("# warm-up\n"))
        result["first_requests_s"] = round(time.perf_counter() - t_load, 3)
        if not (await run.c.stats()).get("engineLoaded"):
            result["error"] = "model did not load: " + "; ".join(run.c.messages or run.c.stderr_tail[-3:])
            await shutdown(run.c.client)
            return result
        await run.c.stats(reset=True)
        invoked: dict[int, tuple[float, Any]] = {}
        for n, site, measure in interleaved(sites):
            if measure == "invoked":
                invoked[n] = await run.invoked(n, site)
                continue
            invoked_ms, invoked_answer = invoked.pop(n)
            automatic_ms, automatic_answer = await run.automatic(n, site.headed("# typing\n"))
            run.rows.append({"file": str(site.path), "line": site.position()[0], "truth": site.truth,
                             "invoked_ms": round(invoked_ms, 2), "automatic_ms": round(automatic_ms, 2),
                             "automatic": automatic_answer, **_score(invoked_answer, site.truth)})
            _summarise(result, run.rows)
            write_json(result | {"rows": run.rows, "partial": f"{n + 1}/{len(sites)} sites"}, args.out)
            _say(args, f"  {n + 1}/{len(sites)} invoked {invoked_ms:.0f} ms, automatic {automatic_ms:.0f} ms")
        stats = await run.c.stats(timings=True)
    timings = [t for t in stats.get("timings", []) if t.get("kind") == "inline"]
    result["engine_ms"] = summary([t["engineMs"] for t in timings])
    result["breakdown"] = breakdown(timings)
    result["model"] = run.c.ready("model", args.model)
    result["device"] = run.c.ready("device", args.device)
    result["rows"] = run.rows
    await shutdown(run.c.client)
    return result


def breakdown(timings: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Where the measured requests' time went on the server, per kind: the invoked
    requests and the automatic ones that were answered (not cancelled by the next key)."""
    parts = {"engine_ms": "engineMs", "queue_ms": "queueMs", "debounce_ms": "debounceMs", "server_ms": "serverMs"}
    out: dict[str, dict[str, Any]] = {}
    for kind in ("invoked", "automatic"):
        done = [t for t in timings if f"/diffill-bench/{kind}/" in t.get("uri", "")
                and t.get("outcome") == "completed" and not t.get("cached")]
        out[kind] = {name: summary([t[key] for t in done])["p50"] if done else None for name, key in parts.items()}
        out[kind]["requests"] = len(done)
    return out


def _summarise(result: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    result["invoked_ms"] = summary([r["invoked_ms"] for r in rows])
    result["automatic_ms"] = summary([r["automatic_ms"] for r in rows])
    result["suggested"] = sum(r["suggested"] for r in rows)
    result["exact_first_line"] = sum(r["exact"] for r in rows)
    result["any_exact_first_line"] = sum(r["any_exact"] for r in rows)
    result["targets_met"] = {
        "invoked_p50": result["invoked_ms"]["p50"] <= TARGETS["invoked_p50_ms"],
        "invoked_p95": result["invoked_ms"]["p95"] <= TARGETS["invoked_p95_ms"],
        "automatic_p50": result["automatic_ms"]["p50"] <= TARGETS["automatic_p50_ms"],
    }


def print_real_files(r: dict[str, Any]) -> None:
    if r.get("error"):
        print(f"bench lsp --files: error: {r['error']}")
        return
    print(f"model {r.get('model')} on {r.get('device')}, {r['sites']} real-file sites, "
          f"{r['load_processes']} competing busy processes")
    for key in ("invoked_ms", "automatic_ms", "engine_ms"):
        v = r[key]
        print(f"  {key:14s} p50 {v['p50']:9.1f}  p95 {v['p95']:9.1f}")
    for kind, parts in (r.get("breakdown") or {}).items():
        print(f"  {kind} server-side p50s: " + ", ".join(
            f"{name} {value:.1f}" for name, value in parts.items() if name != "requests" and value is not None)
            + f" ({parts['requests']} answered by the engine)")
    print(f"  suggestions {r['suggested']}/{r['sites']}, first line exact {r['exact_first_line']}/{r['sites']}")
    print("  targets: " + ", ".join(f"{k} {'ok' if ok else 'MISSED'}" for k, ok in r["targets_met"].items()))


def run_from_args(args: argparse.Namespace) -> int:
    """`diffill bench lsp --files DIR`: check the options, run, write and print; an exit code."""
    if args.count < 1 or args.load < 0 or args.typing_ms < 0:
        print("bench lsp: --count must be >= 1, --load and --typing-ms >= 0", file=sys.stderr)
        return 2
    try:
        overrides(args.set)
    except ValueError as exc:
        print(f"bench lsp: {exc}", file=sys.stderr)
        return 2
    if not args.files.is_dir():
        print(f"bench lsp: --files {args.files}: not a directory", file=sys.stderr)
        return 2
    result = asyncio.run(run_real_files(args))
    write_json(result, args.out)
    print_real_files(result)
    print(f"wrote {args.out}")
    return 0 if result.get("error") is None else 1
