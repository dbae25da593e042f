"""`diffill train ...`: the bundled model's recipe, one step per subcommand.

    diffill train corpus     # Python sources on this machine -> data/corpus/{train,heldout}.jsonl + licenses.json
    diffill train tokenizer  # byte-level BPE on the training split
    diffill train model      # time-budgeted masked-diffusion training, exports to engine/models/diffill-tiny
    diffill train evalsets   # held-out infill cases -> engine/bench/data/heldout-{single,multi}.jsonl
    diffill train install D  # make a device export (docs/DEVICE.md) the bundled model
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from engine.loading import BUNDLED_DIR

DATA = Path("data")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="build the corpus and train the bundled model")
    tsub = p.add_subparsers(dest="train_command", metavar="STEP", required=True)

    c = tsub.add_parser("corpus", help="collect deduplicated Python sources with their licences")
    c.add_argument("--out", type=Path, default=DATA / "corpus")
    c.add_argument("--max-files", type=int, default=None)
    c.set_defaults(func=_corpus)

    t = tsub.add_parser("tokenizer", help="train the byte-level BPE tokenizer")
    t.add_argument("--corpus", type=Path, default=DATA / "corpus")
    t.add_argument("--out", type=Path, default=DATA / "tokenizer.json")
    t.add_argument("--vocab-size", type=int, default=8192)
    t.set_defaults(func=_tokenizer)

    m = tsub.add_parser("model", help="train the masked-diffusion model")
    m.add_argument("--corpus", type=Path, default=DATA / "corpus")
    m.add_argument("--tokenizer", type=Path, default=DATA / "tokenizer.json")
    m.add_argument("--out", type=Path, default=BUNDLED_DIR)
    m.add_argument("--size", default="tiny", choices=["test", "tiny", "small", "base"])
    m.add_argument("--minutes", type=float, default=60.0)
    m.add_argument("--max-steps", type=int, default=0)
    m.add_argument("--batch-size", type=int, default=8)
    m.add_argument("--seq-len", type=int, default=1024)
    m.add_argument("--lr", type=float, default=1.5e-3)
    m.add_argument("--threads", type=int, default=0)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--init-from", type=Path, default=None, help="continue training an exported model")
    m.set_defaults(func=_model)

    e = tsub.add_parser("evalsets", help="write held-out single/multi-line infill cases")
    e.add_argument("--corpus", type=Path, default=DATA / "corpus")
    e.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "bench" / "data")
    e.add_argument("--per-kind", type=int, default=200)
    e.set_defaults(func=_evalsets)

    i = tsub.add_parser("install", help="make a device training export the bundled model")
    i.add_argument("export", type=Path, help="the directory the device job wrote ($OUT)")
    i.add_argument("--dest", type=Path, default=BUNDLED_DIR)
    i.set_defaults(func=_install)


def _corpus(args: argparse.Namespace) -> int:
    from engine.training.corpus import build

    summary = build(args.out, args.max_files)
    print(json.dumps(summary["stats"]))
    return 0


def _tokenizer(args: argparse.Namespace) -> int:
    from engine.training.tokenizer import build_tokenizer

    print(f"vocabulary: {build_tokenizer(args.corpus, args.out, args.vocab_size)}")
    return 0


def _model(args: argparse.Namespace) -> int:
    from engine.training.train import TrainConfig, train

    cfg = TrainConfig(size=args.size, seq_len=args.seq_len, batch_size=args.batch_size, lr=args.lr,
                      minutes=args.minutes, max_steps=args.max_steps, threads=args.threads, seed=args.seed,
                      init_from=str(args.init_from or ""))
    log = train(args.corpus, args.tokenizer, args.out, cfg)
    print(json.dumps({k: log[k] for k in ("steps", "tokens", "seconds", "tokens_per_second")}))
    return 0


def _evalsets(args: argparse.Namespace) -> int:
    from engine.training.evalsets import write_evalsets

    counts = write_evalsets(args.corpus / "heldout.jsonl", args.out, args.per_kind)
    print(json.dumps(counts))
    return 0


def _install(args: argparse.Namespace) -> int:
    from engine.training.install import install

    record = install(args.export, args.dest)
    print(json.dumps({"installed": str(args.dest), "tokens": record.get("tokens"), "steps": record.get("steps")}))
    return 0
