"""The training data's guarantees: licences, decontamination, cross-file context, example layout."""
from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
import torch

from engine.context_format import file_header, format_context
from engine.training.cross_file import build_context
from engine.training.decontaminate import (
    SIGNATURES_FILE,
    Decontaminator,
    humaneval_signatures,
)
from engine.training.examples import IGNORE, ExampleBuilder, ExampleConfig
from engine.training.export import plan_shards
from engine.training.licences import is_permissive
from engine.training.schedule import WSD


@pytest.mark.parametrize("licence", ["MIT", "BSD-3-Clause", "Apache-2.0", "PSF-2.0", "MIT License; BSD License",
                                     "Apache-2.0 OR GPL-2.0", "Python Software Foundation License"])
def test_permissive_licences_are_kept(licence):
    assert is_permissive(licence)


@pytest.mark.parametrize("licence", ["GPL-3.0", "LGPL-2.1-or-later", "MPL-2.0", "MIT AND GPL-2.0", "UNKNOWN", "",
                                     None, "NVIDIA Proprietary Software", "Other/Proprietary License"])
def test_copyleft_unknown_and_proprietary_licences_are_dropped(licence):
    assert not is_permissive(licence)


def test_decontamination_finds_heldout_cases_and_humaneval_signatures():
    case = {"prefix": "import os\n\ndef walk(top):\n", "middle": "    for name in os.listdir(top):\n",
            "suffix": "        yield name\n"}
    dec = Decontaminator.from_parts(["def has_close_elements(numbers: List[float], threshold: float) -> bool:"], [case])
    assert dec.contains("# header\n" + case["prefix"] + case["middle"] + case["suffix"] + "x = 1\n") == "heldout"
    assert dec.contains("    for name in os.listdir(top):\n") is None  # the line alone, elsewhere, is fine
    assert dec.contains("def has_close_elements(numbers: List[float], threshold: float) -> bool:\n") == "humaneval"
    assert dec.contains("def unrelated():\n    pass\n") is None


HUMANEVAL = Path(os.environ.get("DIFFILL_HUMANEVAL_DIR")
                 or Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "humaneval-infilling")


@pytest.mark.skipif(not HUMANEVAL.is_dir(), reason="HumanEval-Infilling data not beside the checkout")
def test_shipped_humaneval_signatures_match_the_benchmark():
    assert SIGNATURES_FILE.read_text().splitlines() == humaneval_signatures(HUMANEVAL)


def test_default_decontaminator_covers_the_shipped_heldout_sets():
    dec = Decontaminator.default()
    assert len(dec.signatures) > 150 and len(dec.windows) > 300


def test_cross_file_context_names_each_file_and_ends_with_the_current_one():
    rng = random.Random(0)
    other = "".join(f"def helper_{i}(x):\n    return x + {i}\n" for i in range(50))
    ctx = build_context([("pkg/util.py", other)], "pkg/main.py", "value = helper_7(3)\n", rng, 600)
    assert ctx.startswith(file_header("pkg/util.py")) and ctx.endswith(file_header("pkg/main.py"))
    assert len(ctx) < 800
    assert format_context([("a.py", "x = 1\n"), ("b.py", "  \n")], "c.py") == "# file: a.py\nx = 1\n\n# file: c.py\n"


def test_span_examples_with_context_and_left_revealed_canvases(tiny_model_dir):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tiny_model_dir / "tokenizer.json"))
    mask, filler, pad = (tok.token_to_id(t) for t in ("<mask>", "<eoi>", "<pad>"))
    builder = ExampleBuilder(tok, mask, filler, pad, ExampleConfig(seq_len=256, span_fraction=1.0,
                                                                   left_revealed=1.0), seed=5)
    text = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(40))
    context = format_context([("pkg/other.py", "def g(y):\n    return y\n")], "pkg/main.py")
    ctx_ids = tok.encode(context).ids
    for _ in range(20):
        inputs, labels, weights = builder.span_example(text, context)
        assert len(inputs) <= 256 and inputs[: len(ctx_ids)] == ctx_ids  # context first, whole
        masked = [i for i, t in enumerate(inputs) if t == mask]
        assert masked == list(range(masked[0], masked[-1] + 1))  # one run: the revealed part is on the left
        assert labels[masked[-1]] == filler  # at least one filler, always: the canvas is not the middle's length
        assert all(labels[i] == IGNORE for i in range(len(inputs)) if inputs[i] != mask)


def test_shards_are_planned_within_the_limit():
    plan = plan_shards({"a": 6, "b": 6, "c": 3, "d": 9}, limit=10)
    assert plan == [["a", "c"], ["b"], ["d"]]
    with pytest.raises(ValueError):
        plan_shards({"huge": 11}, limit=10)


def test_schedule_warms_up_holds_and_decays():
    s = WSD(peak=1e-3, warmup_steps=10, decay_fraction=0.2)
    assert s.lr(0, 0.0) == pytest.approx(1e-4)
    assert s.lr(50, 0.5) == pytest.approx(1e-3)
    assert s.lr(90, 0.9) == pytest.approx(1e-3 * (1 - 0.98 * 0.5))
    assert s.lr(99, 1.0) == pytest.approx(2e-5)
    assert torch.isfinite(torch.tensor(s.lr(10**6, 2.0)))
