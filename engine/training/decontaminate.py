"""Keep evaluation data out of the training corpus.

Two kinds of fingerprints, both checked line by line so a whole installation
can be scanned quickly:

* **held-out cases** (``engine/bench/data/heldout-*.jsonl``): a file is dropped
  when it contains a case's middle together with the lines around it (the same
  file from another release of a package usually does);
* **HumanEval**: a file is dropped when it contains one of the benchmark's
  function signatures (``data/humaneval_signatures.txt``, written by
  :func:`humaneval_signatures` from the public HumanEval-Infilling files).
"""
from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

DATA_DIR = Path(__file__).parent / "data"
SIGNATURES_FILE = DATA_DIR / "humaneval_signatures.txt"
HELDOUT_DIR = Path(__file__).resolve().parents[1] / "bench" / "data"
#: characters of prefix and suffix around a held-out middle that must match too
AROUND = 120


def humaneval_signatures(benchmark_dir: Path) -> list[str]:
    """The ``def entry_point(...)`` line of every HumanEval problem, stripped."""
    found: set[str] = set()
    for path in sorted(Path(benchmark_dir).glob("HumanEval-*.jsonl.gz")):
        with gzip.open(path, "rt") as f:
            for line in f:
                row = json.loads(line)
                text = row["prompt"] + row.get("canonical_solution", "") + row.get("suffix", "")
                for code_line in text.splitlines():
                    if code_line.strip().startswith(f"def {row['entry_point']}("):
                        found.add(code_line.strip())
    return sorted(found)


@dataclass
class Decontaminator:
    """Line-indexed fingerprints; ``contains(text)`` is one set lookup per line."""

    signatures: set[str] = field(default_factory=set)
    #: stripped first line of a held-out middle -> the exact text around it
    windows: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def default(cls) -> Decontaminator:
        """Fingerprints of the shipped held-out sets and of HumanEval."""
        sigs = SIGNATURES_FILE.read_text().splitlines() if SIGNATURES_FILE.is_file() else []
        cases: list[dict] = []
        for path in sorted(HELDOUT_DIR.glob("heldout-*.jsonl")):
            cases.extend(json.loads(line) for line in path.open())
        return cls.from_parts(sigs, cases)

    @classmethod
    def from_parts(cls, signatures: Iterable[str], cases: Iterable[dict]) -> Decontaminator:
        dec = cls(signatures={s.strip() for s in signatures if s.strip()})
        for case in cases:
            first = next((ln.strip() for ln in case["middle"].splitlines() if ln.strip()), "")
            if first:
                window = case["prefix"][-AROUND:] + case["middle"] + case["suffix"][:AROUND]
                dec.windows.setdefault(first, []).append(window)
        return dec

    def contains(self, text: str) -> str | None:
        """Why ``text`` must not be trained on, or None."""
        for line in text.splitlines():
            s = line.strip()
            if not s:
                continue
            if s in self.signatures:
                return "humaneval"
            for window in self.windows.get(s, ()):
                if window in text:
                    return "heldout"
        return None
