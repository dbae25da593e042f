"""Benchmark cases: HumanEval-Infilling and the held-out split, as ``InfillCase``.

HumanEval-Infilling (``--data DIR``) holds gzipped JSONL files whose rows have
``task_id, entry_point, prompt (prefix), suffix, canonical_solution (middle),
test``.  The held-out split (``--heldout DIR``, default ``engine/bench/data``)
holds ``heldout-single.jsonl`` and ``heldout-multi.jsonl`` with rows
``{task_id, prefix, suffix, middle, kind}``; it has no tests, so only exact
match and edit similarity apply to it.
"""
from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

#: default location of the held-out split written by the training pipeline
DEFAULT_HELDOUT_DIR = Path(__file__).parent / "data"

#: subset name -> HumanEval-Infilling file
HUMANEVAL_FILES = {
    "single": "HumanEval-SingleLineInfilling.jsonl.gz",
    "multi": "HumanEval-MultiLineInfilling.jsonl.gz",
    "random": "HumanEval-RandomSpanInfillingLight.jsonl.gz",
    "random-full": "HumanEval-RandomSpanInfilling.jsonl.gz",
}

#: subset name -> held-out file
HELDOUT_FILES = {
    "heldout-single": "heldout-single.jsonl",
    "heldout-multi": "heldout-multi.jsonl",
}

#: every subset name the benchmarks accept (``heldout`` expands to both held-out files)
SUBSETS = [*HUMANEVAL_FILES, *HELDOUT_FILES]


class DatasetError(ValueError):
    """A benchmark file is missing or malformed (one-line message)."""


@dataclass(frozen=True)
class InfillCase:
    """One fill-in-the-middle problem with its reference middle.

    ``kind`` is ``single`` or ``multi`` (line count of the middle's span) or
    ``random``; ``test`` and ``entry_point`` are set for HumanEval cases only.
    """

    task_id: str
    prefix: str
    suffix: str
    middle: str
    kind: str
    subset: str
    entry_point: str | None = None
    test: str | None = None

    @property
    def executable(self) -> bool:
        return bool(self.test and self.entry_point)

    def program(self, middle: str) -> str:
        """The HumanEval program for a candidate middle: code, tests, and the check call."""
        if not self.executable:
            raise ValueError(f"{self.task_id} has no tests")
        return f"{self.prefix}{middle}{self.suffix}\n{self.test}\n\ncheck({self.entry_point})\n"


def parse_subsets(spec: str) -> list[str]:
    """``"single,multi,heldout"`` -> validated subset names, in order, without repeats."""
    names: list[str] = []
    for raw in spec.split(","):
        name = raw.strip()
        if not name:
            continue
        expanded = list(HELDOUT_FILES) if name == "heldout" else [name]
        for item in expanded:
            if item not in SUBSETS:
                raise DatasetError(f"unknown subset {name!r}; choose from {', '.join([*SUBSETS, 'heldout'])}")
            if item not in names:
                names.append(item)
    if not names:
        raise DatasetError("no subsets given")
    return names


def subset_path(subset: str, data_dir: Path | None, heldout_dir: Path | None) -> Path | None:
    """The file for ``subset``, or None when its directory is not configured."""
    if subset in HUMANEVAL_FILES:
        return Path(data_dir) / HUMANEVAL_FILES[subset] if data_dir else None
    return Path(heldout_dir or DEFAULT_HELDOUT_DIR) / HELDOUT_FILES[subset]


def load_subset(subset: str, path: Path) -> list[InfillCase]:
    """Read every case of ``subset`` from ``path``."""
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    reader = _humaneval_case if subset in HUMANEVAL_FILES else _heldout_case
    cases = []
    for number, row in enumerate(_read_jsonl(path), start=1):
        try:
            cases.append(reader(row, subset))
        except (KeyError, TypeError) as exc:
            raise DatasetError(f"{path}:{number}: bad row ({exc.__class__.__name__}: {exc})") from None
    return cases


def spread(cases: list[InfillCase], limit: int | None) -> list[InfillCase]:
    """``limit`` cases evenly spaced over the list (so that a small limit still
    covers many tasks instead of the first task's variants); all when None."""
    if limit is None or limit >= len(cases):
        return list(cases)
    if limit <= 0:
        return []
    return [cases[i * len(cases) // limit] for i in range(limit)]


def _read_jsonl(path: Path):
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise DatasetError(f"{path}:{number}: invalid JSON ({exc.msg})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from None


def _humaneval_case(row: dict, subset: str) -> InfillCase:
    middle = _str(row, "canonical_solution")
    kind = subset if subset != "random-full" else "random"
    return InfillCase(
        task_id=_str(row, "task_id"), prefix=_str(row, "prompt"), suffix=_str(row, "suffix"),
        middle=middle, kind=kind, subset=subset,
        entry_point=_str(row, "entry_point"), test=_str(row, "test"),
    )


def _heldout_case(row: dict, subset: str) -> InfillCase:
    kind = row.get("kind") or subset.removeprefix("heldout-")
    return InfillCase(
        task_id=str(row["task_id"]), prefix=_str(row, "prefix"), suffix=_str(row, "suffix"),
        middle=_str(row, "middle"), kind=str(kind), subset=subset,
    )


def _str(row: dict, key: str) -> str:
    value = row[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} is {type(value).__name__}, not a string")
    return value
