"""Each natively loaded family against its upstream reference implementation.

The fixtures (tests/fixtures/families/, made as README.md there says) hold a tiny
random checkpoint in the family's own layout and the logits / greedy tokens the
upstream code computed from it.  Here diffill loads the same files with
transformers' own classes and must agree: max |logit difference| <= 1e-4 in
float32 and the same greedy tokens at the masked positions.  DreamOn also
matches the upstream expand/delete generation token for token.  With ``--device cuda``
the same checks run on the GPU (float32 there too).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from engine.backends.families import detect
from engine.backends.native_loader import load_native
from engine.cancellation import CancellationToken

FIXTURES = Path(__file__).parent / "fixtures" / "families"
#: fixture directory -> native family
CASES = {"dream-coder": "dream", "diffucoder": "dream", "dreamon": "dreamon", "llada": "llada",
         "open-dcoder": "open-dcoder"}
TOLERANCE = 1e-4
#: loads five models (~30 s on 2 cores): left out of the quick loop (pytest -m 'not slow and not editor')
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=sorted(CASES))
def loaded(request, device):
    name = request.param
    backend = load_native(str(FIXTURES / name), CASES[name], device=device, torch_dtype=torch.float32)
    reference = load_file(str(FIXTURES / name / "reference.safetensors"))
    meta = json.loads((FIXTURES / name / "reference.json").read_text())
    return name, backend, reference, meta


def _raw_network(backend):
    return getattr(backend.model, "network", backend.model)


def test_logits_match_the_reference(loaded):
    name, backend, reference, _ = loaded
    with torch.inference_mode():
        logits = _raw_network(backend)(input_ids=reference["input_ids"].to(backend.device)).logits.float().cpu()
    assert logits.shape == reference["logits"].shape
    diff = (logits - reference["logits"]).abs().max().item()
    assert diff <= TOLERANCE, f"{name}: max |logit difference| {diff:.3g}"


def test_greedy_tokens_match_the_reference(loaded):
    """What the reference sampler would commit at each mask: its own shift convention
    (Dream-style shifted, LLaDA not) must be what diffill's aligned logits give."""
    name, backend, reference, meta = loaded
    ids = reference["input_ids"].to(backend.device)
    with torch.inference_mode():
        aligned = backend.model(input_ids=ids).logits
    greedy = aligned[ids == backend.info.mask_id].argmax(-1).tolist()
    assert greedy == meta["greedy_mask_tokens"], name


def test_attention_is_bidirectional(loaded):
    """Changing the last token changes the first position's logits (a causal network would not)."""
    _, backend, reference, _ = loaded
    ids = reference["input_ids"].to(backend.device)
    other = ids.clone()
    other[0, -1] = (other[0, -1] + 1) % 256
    net = _raw_network(backend)
    with torch.inference_mode():
        first = net(input_ids=ids).logits[0, 0]
        changed = net(input_ids=other).logits[0, 0]
    assert (first - changed).abs().max().item() > 1e-6


def test_shifted_families_predict_position_i_from_logits_at_i_minus_1(loaded):
    name, backend, reference, meta = loaded
    ids = reference["input_ids"].to(backend.device)
    with torch.inference_mode():
        raw = _raw_network(backend)(input_ids=ids).logits
        aligned = backend.model(input_ids=ids).logits
    if meta["shifted"]:
        assert torch.equal(aligned[:, 1:], raw[:, :-1]) and torch.equal(aligned[:, 0], raw[:, 0]), name
    else:
        assert torch.equal(aligned, raw), name


def test_dreamon_expand_and_delete_match_the_reference_generation(device):
    ref = json.loads((FIXTURES / "dreamon" / "reference_generation.json").read_text())
    backend = load_native(str(FIXTURES / "dreamon"), "dreamon", device=device, torch_dtype=torch.float32)
    backend.top_p = 1.0  # the reference run used no nucleus (top_p=None)
    bos, eos = backend.info.document_start, backend.info.document_end
    lengths, state = [], None
    for state in backend.denoise([bos, *ref["prefix"]], [*ref["suffix"], eos], ref["max_gen_len"],
                                 ref["steps"], CancellationToken()):
        lengths.append(len(state.ids))
    assert state is not None and state.kept() == ref["middle"]
    grew = any(b > a for a, b in zip(lengths, lengths[1:]))
    shrank = any(b < a for a, b in zip(lengths, lengths[1:]))
    assert grew and shrank, f"the fixture must exercise both <|expand|> and <|delete|>: {lengths}"


@pytest.mark.parametrize("name,family", [("dream-coder", "dream"), ("diffucoder", "dream"),
                                         ("dreamon", "dreamon"), ("llada", "llada"), ("open-dcoder", None)])
def test_directories_are_recognised_without_remote_code(name, family):
    """Dream/DreamOn/LLaDA directories load natively by their config; Open-dCoder's config is plain
    Qwen2, so only the catalog (or diffill.json) says what it is.  No repository code is present."""
    assert not list((FIXTURES / name).glob("*.py"))
    assert detect(FIXTURES / name) == family


def test_dreamon_fixed_length_requests_keep_the_canvas_size(device):
    """``fixed_length``: exactly ``max_new_tokens`` tokens, neither <|expand|> nor <|delete|> committed."""
    from engine.types import InfillRequest

    backend = load_native(str(FIXTURES / "dreamon"), "dreamon", device=device, torch_dtype=torch.float32)
    request = InfillRequest(prefix="def f(x):\n    return ", suffix="\n", max_new_tokens=6, fixed_length=True)
    runner = backend.run(request, CancellationToken())
    try:
        while True:
            next(runner)
    except StopIteration as stop:
        result = stop.value
    assert result.tokens == 6 and result.forwards == 6
