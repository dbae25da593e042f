"""The training recipe end to end on a few files: corpus -> tokenizer -> model -> loadable engine."""
from __future__ import annotations

import json

import pytest

from engine import InfillRequest, load_engine
from engine.training.corpus import build, is_heldout
from engine.training.evalsets import write_evalsets
from engine.training.examples import IGNORE, ExampleBuilder, ExampleConfig
from engine.training.tokenizer import build_tokenizer
from engine.training.train import TrainConfig, train

#: starts processes or trains/loads models: left out of the quick loop (pytest -m 'not slow and not editor')
pytestmark = pytest.mark.slow


def test_recipe_produces_a_loadable_model(tmp_path):
    corpus = tmp_path / "corpus"
    summary = build(corpus, max_files=120, progress=False)
    train_rows = [json.loads(line) for line in (corpus / "train.jsonl").open()]
    held_rows = [json.loads(line) for line in (corpus / "heldout.jsonl").open()]
    assert train_rows and summary["licenses"]
    # deduplicated, split by content hash, held-out never in train
    train_hashes = {r["sha256"] for r in train_rows}
    assert len(train_hashes) == len(train_rows)
    assert not train_hashes & {r["sha256"] for r in held_rows}
    assert all(not is_heldout(h) for h in train_hashes)
    assert all(r["license"] for r in train_rows)

    tok_file = tmp_path / "tokenizer.json"
    assert build_tokenizer(corpus, tok_file, vocab_size=400) == 400
    if not held_rows:  # a tiny corpus may hold out nothing: reuse a train file for the held-out loss
        (corpus / "heldout.jsonl").write_text(json.dumps(train_rows[0]) + "\n")
    out = tmp_path / "model"
    log = train(corpus, tok_file, out, TrainConfig(size="test", seq_len=128, batch_size=2, max_steps=3,
                                                   minutes=5, threads=1), progress=False)
    assert log["steps"] == 3 and log["tokens"] > 0
    assert (out / "diffill.json").is_file() and (out / "corpus_licenses.json").is_file()
    engine = load_engine(str(out), device="cpu", dtype="float32")
    assert engine.infill(InfillRequest("def f(x):\n    return ", "\n", max_new_tokens=6)).forwards >= 1


def test_span_examples_mask_only_the_canvas(tiny_model_dir):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tiny_model_dir / "tokenizer.json"))
    mask, filler, pad = (tok.token_to_id(t) for t in ("<mask>", "<eoi>", "<pad>"))
    builder = ExampleBuilder(tok, mask, filler, pad, ExampleConfig(seq_len=256, span_fraction=1.0), seed=3)
    text = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(40))
    for _ in range(20):
        inputs, labels, weights = builder.span_example(text)
        assert len(inputs) == len(labels) == len(weights) <= 256
        masked = [i for i, t in enumerate(inputs) if t == mask]
        assert masked and all(labels[i] != IGNORE for i in masked)
        assert all(labels[i] == IGNORE for i in range(len(inputs)) if inputs[i] != mask)


def test_evalsets_come_from_the_heldout_split(tmp_path):
    heldout = tmp_path / "heldout.jsonl"
    body = "".join(f"value_{i} = compute({i}, factor=2)\n" for i in range(30))
    heldout.write_text(json.dumps({"path": "/x/mod.py", "sha256": "ab" * 32, "text": body}) + "\n")
    counts = write_evalsets(heldout, tmp_path / "out", per_kind=5)
    assert counts == {"single": 1, "multi": 1}
    case = json.loads((tmp_path / "out" / "heldout-single.jsonl").read_text())
    assert case["prefix"] + case["middle"] + case["suffix"] == body
