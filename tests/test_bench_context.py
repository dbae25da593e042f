"""`diffill bench context` writes its JSON after every part, so an interrupted
run keeps what it measured (tiny workspace, the tests' tiny model)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from lsp_server.bench import context as bench


def _args(root: Path, out: Path, model: Path, parts: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench.register_bench(parser.add_subparsers())
    return parser.parse_args(["context", "--root", str(root), "--files", "50", "--sites", "3", "--parts", parts,
                              "--model", str(model), "--out", str(out)])


def test_interrupted_run_keeps_the_parts_it_finished(tmp_path: Path, tiny_model_dir: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "site"
    for pkg in ("alpha", "beta"):
        (root / pkg).mkdir(parents=True)
        for i in range(3):
            (root / pkg / f"m{i}.py").write_text(f"def {pkg}_{i}(x):\n    return x\n\n\n" + "y = 1\n" * 60)
    out = tmp_path / "context.json"

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(bench, "measure_gather", interrupted)
    args = _args(root, out, tiny_model_dir, "index,gather")
    with pytest.raises(KeyboardInterrupt):
        args.func(args)
    partial = json.loads(out.read_text())
    assert partial["complete"] is False and "gather" not in partial
    assert partial["index"]["walked"] == 6 and partial["index"]["definitions"] == 6
    monkeypatch.undo()
    args = _args(root, out, tiny_model_dir, "index,gather")
    assert args.func(args) == 0
    done = json.loads(out.read_text())
    assert done["complete"] is True and done["gather"]["n"] == 3 and done["loadAverage"]["gather"]
