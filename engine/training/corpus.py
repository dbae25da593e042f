"""Corpus builder: Python sources installed on this machine (stdlib + site-packages).

Files are deduplicated by content hash, each is attributed to its distribution
and that distribution's licence (recorded in ``licenses.json``), and a held-out
split chosen by content hash is written separately and never trained on.
"""
from __future__ import annotations

import hashlib
import json
import sys
import sysconfig
from collections import Counter
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from tqdm import tqdm

#: per-mille of files held out (chosen by content hash, so stable across machines)
HELDOUT_PER_MILLE = 30
MIN_BYTES, MAX_BYTES = 300, 300_000


@dataclass(frozen=True)
class SourceFile:
    path: str
    dist: str
    license: str
    text: str


def _field(md: metadata.PackageMetadata, key: str) -> str | None:
    """First value of a metadata field (the PackageMetadata protocol has no ``get``)."""
    values = md.get_all(key)
    return str(values[0]) if values else None


def _license_of(dist: metadata.Distribution) -> str:
    md = dist.metadata
    expr = _field(md, "License-Expression")
    if expr:
        return expr.strip()
    lic = (_field(md, "License") or "").strip()
    if lic and len(lic) < 80 and "\n" not in lic:
        return lic
    classifiers = [c.split("::")[-1].strip() for c in md.get_all("Classifier") or [] if c.startswith("License ::")]
    if classifiers:
        return "; ".join(classifiers)
    return "UNKNOWN" if not lic else lic.splitlines()[0][:80]


def _dist_roots() -> dict[Path, tuple[str, str]]:
    """Top-level package directory -> (distribution, licence) for installed distributions."""
    roots: dict[Path, tuple[str, str]] = {}
    for dist in metadata.distributions():
        name = _field(dist.metadata, "Name") or "unknown"
        lic = _license_of(dist)
        for f in dist.files or []:
            parts = Path(str(f)).parts
            if parts and str(f).endswith(".py") and not parts[0].endswith((".dist-info", ".egg-info")):
                try:
                    top = Path(str(dist.locate_file(parts[0]))).resolve()
                except (OSError, ValueError):
                    continue
                roots.setdefault(top, (name, lic))
    return roots


def discover(max_files: int | None = None) -> list[tuple[Path, str, str, str]]:
    """(path, distribution, licence, path relative to its installation root) for
    every candidate .py file; the relative path is what a repository would show."""
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    found: list[tuple[Path, str, str, str]] = []
    for p in sorted(stdlib.rglob("*.py")):
        rel = p.relative_to(stdlib).parts
        if rel and rel[0] in ("site-packages", "dist-packages", "test", "idlelib", "lib2to3") or "tests" in rel:
            continue
        found.append((p, "cpython-stdlib", "PSF-2.0", "/".join(rel)))
    for top, (dist, lic) in sorted(_dist_roots().items()):
        if top.is_file() and top.suffix == ".py":
            found.append((top, dist, lic, top.name))
        elif top.is_dir():
            found.extend((p, dist, lic, str(p.relative_to(top.parent))) for p in sorted(top.rglob("*.py")))
    if max_files:
        found = found[:max_files]
    return found


def read_source(path: Path) -> tuple[str | None, str]:
    """(normalised text, "") for a usable file, else (None, reason skipped)."""
    try:
        raw = path.read_bytes()
    except OSError:
        return None, "skipped_unreadable"
    if not MIN_BYTES <= len(raw) <= MAX_BYTES:
        return None, "skipped_size"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, "skipped_encoding"
    return text.replace("\r\n", "\n"), ""


def is_heldout(digest: str) -> bool:
    return int(digest[:8], 16) % 1000 < HELDOUT_PER_MILLE


def build(out_dir: Path, max_files: int | None = None, progress: bool = True) -> dict:
    """Write train.jsonl, heldout.jsonl and licenses.json under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    counts: Counter[str] = Counter()
    licenses: dict[str, str] = {}
    stats: Counter[str] = Counter()
    with (out_dir / "train.jsonl").open("w") as train, (out_dir / "heldout.jsonl").open("w") as held:
        for path, dist, lic, _rel in tqdm(discover(max_files), desc="corpus", disable=not progress, file=sys.stderr):
            text, skipped = read_source(path)
            if text is None:
                stats[skipped] += 1
                continue
            raw = text.encode()
            digest = hashlib.sha256(text.encode()).hexdigest()
            if digest in seen:
                stats["duplicates"] += 1
                continue
            seen.add(digest)
            row = json.dumps({"path": str(path), "dist": dist, "license": lic, "sha256": digest, "text": text})
            split = "heldout" if is_heldout(digest) else "train"
            (held if split == "heldout" else train).write(row + "\n")
            stats[split] += 1
            stats[f"{split}_bytes"] += len(raw)
            counts[dist] += 1
            licenses[dist] = lic
    summary = {"files": dict(counts), "licenses": licenses, "stats": dict(stats)}
    (out_dir / "licenses.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    return summary


def read_texts(path: Path, limit_bytes: int | None = None):
    """Yield the ``text`` of each row of a corpus JSONL file."""
    total = 0
    with path.open() as f:
        for line in f:
            text = json.loads(line)["text"]
            total += len(text)
            yield text
            if limit_bytes and total >= limit_bytes:
                return
