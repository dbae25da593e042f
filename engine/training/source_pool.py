"""The training corpus in memory, collected in parallel: what the device job trains on.

Same sources and filters as ``diffill train corpus`` (stdlib and installed
packages, size and encoding filters, deduplication by content hash, held-out
split by content hash), plus: only permissively licensed distributions, no
file that holds evaluation data (``decontaminate``), and each file keeps its
repository-style path so that cross-file examples can name it and find its
neighbours (files of the same directory, else of the same top-level package).
"""
from __future__ import annotations

import hashlib
import os
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from multiprocessing import Pool
from pathlib import Path

from engine.training.corpus import discover, is_heldout, read_source
from engine.training.decontaminate import Decontaminator
from engine.training.licences import is_permissive


@dataclass(frozen=True)
class Doc:
    path: str  # repository-style path, e.g. "json/decoder.py"
    dist: str
    text: str


@dataclass
class SourcePool:
    train: list[Doc]
    heldout: list[Doc]
    stats: dict[str, int]
    licences: dict[str, str]
    files_per_dist: dict[str, int]
    _groups: dict[str, list[int]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        groups: dict[str, list[int]] = defaultdict(list)
        for i, doc in enumerate(self.train):
            groups[_dir_key(doc)].append(i)
            groups[_package_key(doc)].append(i)
        self._groups = dict(groups)

    def neighbours(self, index: int, rng: random.Random, k: int) -> list[Doc]:
        """Up to ``k`` other files of the same directory, else of the same package."""
        doc = self.train[index]
        out: list[Doc] = []
        for key in (_dir_key(doc), _package_key(doc)):
            members = [i for i in self._groups.get(key, ()) if i != index]
            rng.shuffle(members)
            for i in members:
                if len(out) >= k:
                    return out
                if self.train[i] not in out:
                    out.append(self.train[i])
        return out

    def summary(self) -> dict:
        return {"stats": self.stats, "licenses": self.licences, "files": self.files_per_dist}


def _dir_key(doc: Doc) -> str:
    return "d:" + doc.dist + ":" + doc.path.rsplit("/", 1)[0] if "/" in doc.path else "d:" + doc.dist

def _package_key(doc: Doc) -> str:
    return "p:" + doc.dist + ":" + doc.path.split("/", 1)[0]


_DECON: Decontaminator | None = None


def _init_worker(decon: Decontaminator | None) -> None:
    global _DECON
    _DECON = decon


def _read_one(item: tuple[str, str, str, str]) -> tuple[str, str, str, str, str]:
    """(rel, dist, sha256 or "", text, reason skipped) for one candidate file."""
    path, dist, _lic, rel = item
    text, skipped = read_source(Path(path))
    if text is None:
        return rel, dist, "", "", skipped
    if _DECON is not None:
        why = _DECON.contains(text)
        if why:
            return rel, dist, "", "", f"skipped_{why}"
    return rel, dist, hashlib.sha256(text.encode()).hexdigest(), text, ""


def collect(workers: int | None = None, max_files: int | None = None,
            decontaminator: Decontaminator | None = None) -> SourcePool:
    """Read, filter, deduplicate and split every candidate file with ``workers`` processes."""
    stats: Counter[str] = Counter()
    licences: dict[str, str] = {}
    items = []
    for path, dist, lic, rel in discover(max_files):
        if not is_permissive(lic):
            stats["skipped_licence"] += 1
            continue
        licences[dist] = lic
        items.append((str(path), dist, lic, rel))
    seen: set[str] = set()
    train: list[Doc] = []
    heldout: list[Doc] = []
    per_dist: Counter[str] = Counter()
    workers = workers or os.cpu_count() or 1
    with Pool(workers, initializer=_init_worker, initargs=(decontaminator,)) as pool:
        for rel, dist, digest, text, skipped in pool.imap(_read_one, items, chunksize=64):
            if skipped:
                stats[skipped] += 1
                continue
            if digest in seen:
                stats["duplicates"] += 1
                continue
            seen.add(digest)
            split = "heldout" if is_heldout(digest) else "train"
            (heldout if split == "heldout" else train).append(Doc(rel, dist, text))
            stats[split] += 1
            stats[f"{split}_bytes"] += len(text.encode())
            per_dist[dist] += 1
    used = {d for d in per_dist}
    return SourcePool(train, heldout, dict(stats), {d: licences[d] for d in sorted(used)}, dict(per_dist))
