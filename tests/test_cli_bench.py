"""`diffill bench`: its subcommands parse; `bench lsp`, `soak` and `context` are lsp_server.bench's."""
from __future__ import annotations

from diffill.main import build_parser


def test_bench_lsp_soak_and_context_come_from_lsp_server() -> None:
    parser = build_parser()
    for name in ("lsp", "soak", "context"):
        func = parser.parse_args(["bench", name]).func
        assert func.__module__.startswith("lsp_server.bench."), (name, func.__module__)


def test_bench_quality_and_speed_parse() -> None:
    args = build_parser().parse_args(["bench", "quality", "--subsets", "single,heldout", "--limit", "3", "--oracle"])
    assert args.limit == 3 and args.oracle and args.max_new_tokens is None
    args = build_parser().parse_args(["bench", "speed", "--out-dir", "x", "--sampler", "remask"])
    assert str(args.out_dir) == "x" and args.warmup == 2
