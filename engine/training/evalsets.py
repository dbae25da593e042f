"""Held-out infill cases (single-line and multi-line) from the held-out split.

At most one case of each kind per file, chosen with a fixed seed, so the
benchmark is stable and covers many files.  Prefix and suffix are cut at line
boundaries to a few thousand characters (the engine windows them further).
"""
from __future__ import annotations

import json
import random
from pathlib import Path

PREFIX_CHARS, SUFFIX_CHARS = 4000, 2000


def _code_line(line: str) -> bool:
    s = line.strip()
    return 10 <= len(s) <= 100 and not s.startswith(("#", '"""', "'''", "@")) and s not in ("else:", "try:")


def _cut(prefix: str, suffix: str) -> tuple[str, str]:
    if len(prefix) > PREFIX_CHARS:
        prefix = prefix[-PREFIX_CHARS:]
        prefix = prefix[prefix.find("\n") + 1:]
    if len(suffix) > SUFFIX_CHARS:
        suffix = suffix[: suffix.rfind("\n", 0, SUFFIX_CHARS) + 1]
    return prefix, suffix


def cases_for_file(text: str, rng: random.Random, path: str) -> dict[str, dict]:
    lines = text.splitlines(keepends=True)
    out: dict[str, dict] = {}
    singles = [i for i, line in enumerate(lines) if _code_line(line) and i > 3]
    if singles:
        i = rng.choice(singles)
        prefix, suffix = _cut("".join(lines[:i]), "".join(lines[i + 1:]))
        out["single"] = {"prefix": prefix, "suffix": suffix, "middle": lines[i]}
    multis = [i for i in singles if i + 2 < len(lines)]
    if multis:
        i = rng.choice(multis)
        n = rng.randint(2, 5)
        middle = "".join(lines[i:i + n])
        if len(middle) <= 400 and middle.strip():
            prefix, suffix = _cut("".join(lines[:i]), "".join(lines[i + n:]))
            out["multi"] = {"prefix": prefix, "suffix": suffix, "middle": middle}
    for kind, case in out.items():
        case["task_id"] = f"heldout/{kind}/{Path(path).name}"
        case["kind"] = kind
    return out


def write_evalsets(heldout_jsonl: Path, out_dir: Path, per_kind: int = 200, seed: int = 0) -> dict[str, int]:
    rng = random.Random(seed)
    rows = [json.loads(line) for line in heldout_jsonl.open()]
    rng.shuffle(rows)
    found: dict[str, list[dict]] = {"single": [], "multi": []}
    for row in rows:
        for kind, case in cases_for_file(row["text"], rng, row["path"]).items():
            if len(found[kind]) < per_kind:
                case["task_id"] += f"#{row['sha256'][:8]}"
                found[kind].append(case)
    out_dir.mkdir(parents=True, exist_ok=True)
    for kind, cases in found.items():
        with (out_dir / f"heldout-{kind}.jsonl").open("w") as f:
            for case in cases:
                f.write(json.dumps(case) + "\n")
    return {kind: len(cases) for kind, cases in found.items()}
