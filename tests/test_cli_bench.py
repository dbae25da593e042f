"""`diffill bench` registers `bench lsp` from lsp_server.bench.lsp when that module exists."""
from __future__ import annotations

import argparse
import sys
import types

import pytest

from engine.cli.main import build_parser


def test_bench_lsp_is_registered_from_lsp_server(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("lsp_server.bench.lsp")

    def register_bench(bench: argparse._SubParsersAction) -> None:
        bench.add_parser("lsp").set_defaults(func=lambda args: 0, fake_lsp=True)

    fake.register_bench = register_bench  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "lsp_server.bench.lsp", fake)
    args = build_parser().parse_args(["bench", "lsp"])
    assert args.fake_lsp is True


def test_bench_quality_and_speed_parse() -> None:
    args = build_parser().parse_args(["bench", "quality", "--subsets", "single,heldout", "--limit", "3", "--oracle"])
    assert args.limit == 3 and args.oracle and args.max_new_tokens is None
    args = build_parser().parse_args(["bench", "speed", "--out-dir", "x", "--sampler", "remask"])
    assert str(args.out_dir) == "x" and args.warmup == 2
