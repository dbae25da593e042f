"""A toy language where every infill's right length is known, and a tiny
DiffusionGemma trained on it for a minute or two on one CPU core.

The language: words ``w00 .. wNN`` on one fixed random cycle (each word has
exactly one successor); a text is a walk along the cycle that stops at a random
point (end of text).  Given a prefix and a suffix, the middle is the walk
between them, so its length is fixed by the two sides (the cycle is longer
than any middle) and a length-choosing rule can be scored by plain counting.

The model is trained as a plain block-diffusion language model, the way
DiffusionGemma is: a causal encoder over the text so far, a bidirectional
decoder over the next ``CANVAS`` tokens with uniform-noise corruption and
self-conditioning.  Infill with pinned suffix tokens is then what the backend
asks of it, exactly as of the real model.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

CANVAS = 32
WORDS = 40
SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>"]  # DiffusionGemma's pad/eos/bos ids 0..2
PAD, EOS, BOS = 0, 1, 2
FIRST = len(SPECIALS)
#: the longest middle a case has (the canvas must also hold the suffix and EOS)
MAX_MIDDLE = 20


def word(i: int) -> str:
    return f"w{i:02d}"


def successor_table(seed: int = 0) -> list[int]:
    """Token id -> next token id along one random cycle through every word."""
    order = list(range(WORDS))
    random.Random(seed).shuffle(order)
    nxt = [0] * (FIRST + WORDS)
    for a, b in zip(order, order[1:] + order[:1]):
        nxt[FIRST + a] = FIRST + b
    return nxt


def walk(nxt: list[int], start: int, n: int) -> list[int]:
    out = [start]
    while len(out) < n:
        out.append(nxt[out[-1]])
    return out


def tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    vocab.update({word(i): FIRST + i for i in range(WORDS)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>",
                                   bos_token="<bos>", unk_token="<unk>")


def config():
    from transformers import DiffusionGemmaConfig

    vocab = FIRST + WORDS
    return DiffusionGemmaConfig(
        text_config=dict(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=16, global_head_dim=16,
                         sliding_window=16, num_experts=4, top_k_experts=2, moe_intermediate_size=32,
                         max_position_embeddings=256, pad_token_id=PAD, eos_token_id=EOS, bos_token_id=BOS,
                         layer_types=["sliding_attention", "sliding_attention", "full_attention"]),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           num_key_value_heads=2, head_dim=8),
        canvas_length=CANVAS,
    )


def _batch(nxt: list[int], rng: random.Random, size: int, prompt: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``size`` texts cut after ``prompt`` words: (BOS + prompt words, next canvas)."""
    prompts, canvases = [], []
    for _ in range(size):
        length = prompt + rng.randint(1, CANVAS + 8)
        text = walk(nxt, FIRST + rng.randrange(WORDS), length) + [EOS]
        canvas = (text[prompt:] + [PAD] * CANVAS)[:CANVAS]
        prompts.append([BOS] + text[:prompt])
        canvases.append(canvas)
    return torch.tensor(prompts), torch.tensor(canvases)


def train(out: Path, *, steps: int = 300, seed: int = 0, log=None) -> dict:
    """Train on the toy language for ``steps`` steps of 32 texts (a step count,
    not a time budget, so that the model does not depend on the machine's
    load) and save model + tokenizer to ``out``; returns steps, smoothed last
    loss and seconds."""
    from transformers import DiffusionGemmaForBlockDiffusion

    torch.manual_seed(seed)
    rng = random.Random(seed)
    nxt = successor_table()
    model = DiffusionGemmaForBlockDiffusion(config())
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    vocab = FIRST + WORDS
    t0 = time.perf_counter()
    step, loss_avg = 0, None
    while step < steps:
        prompt_ids, clean = _batch(nxt, rng, 32, rng.randint(1, 24))
        b, c = clean.shape
        noise_level = torch.rand(b, 1)
        noisy = torch.where(torch.rand(b, c) < noise_level, torch.randint(0, vocab, (b, c)), clean)
        positions = torch.arange(prompt_ids.shape[1], prompt_ids.shape[1] + c).unsqueeze(0)
        sc = None
        if rng.random() < 0.5:  # self-conditioning: the model's own previous guess, no gradient
            with torch.no_grad():
                sc = model(input_ids=prompt_ids, decoder_input_ids=noisy, decoder_position_ids=positions).logits
        logits = model(input_ids=prompt_ids, decoder_input_ids=noisy, decoder_position_ids=positions,
                       self_conditioning_logits=sc).logits
        loss = F.cross_entropy(logits.reshape(-1, vocab), clean.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        value = loss.item()
        loss_avg = value if loss_avg is None else 0.95 * loss_avg + 0.05 * value
        if log is not None and step % 100 == 0:
            log(f"step {step} loss {loss_avg:.3f} ({time.perf_counter() - t0:.0f} s)")
    model.eval()
    model.save_pretrained(out)
    tokenizer().save_pretrained(out)
    return {"steps": step, "loss": loss_avg, "seconds": time.perf_counter() - t0}


@dataclass(frozen=True)
class Case:
    prefix: str
    suffix: str
    middle: list[int]  # the right middle's token ids; its length is the right length


def cases(n: int, seed: int) -> list[Case]:
    """``n`` infill cases with middles of 0..MAX_MIDDLE words (uniform), a
    prefix of 3-12 words and a suffix of 3-6 words that ends the text."""
    rng = random.Random(seed)
    nxt = successor_table()
    tok = tokenizer()
    out = []
    for _ in range(n):
        p, m, s = rng.randint(3, 12), rng.randint(0, MAX_MIDDLE), rng.randint(3, 6)
        text = walk(nxt, FIRST + rng.randrange(WORDS), p + m + s)
        words = tok.convert_ids_to_tokens(text)
        out.append(Case(prefix=" ".join(words[:p]) + " ", suffix=" " + " ".join(words[p + m:]),
                        middle=text[p:p + m]))
    return out


# -- the two length rules, on the same backend and cases ----------------------------

MAX_NEW_TOKENS = 24


def old_rule_middle(backend, case: Case, *, steps: int, seed: int) -> list[int]:
    """The length rule this backend used before issue 17, rebuilt from the same
    pieces as a baseline: lengths ``max_new_tokens`` and its halvings (here 3,
    6, 12, 24), end-of-text pinned after the suffix, each row scored by the
    mean log-probability of its first 24 pinned tokens at the last step it ran
    (noise and all), ties to the shorter middle (no syntax check: not Python)."""
    from engine.backends.block_canvas import build_layout, extract_middle
    from engine.backends.block_sampler import uniform_noise
    from engine.backends.block_window import build_window
    from engine.types import InfillRequest

    request = InfillRequest(case.prefix, case.suffix, max_new_tokens=MAX_NEW_TOKENS, steps=steps, seed=seed)
    win = build_window(backend.tokenizer, case.prefix, case.suffix, prompt_budget=backend._prompt_budget(request),
                       canvas=backend.canvas, bos_id=backend.bos_id)
    kv, _ = backend.cache.encode(backend._nonempty(win.ids), backend.device)
    lengths, n = [], min(MAX_NEW_TOKENS, backend.canvas - 1)
    while n >= 2 and len(lengths) < 4:
        lengths.append(n)
        n //= 2
    lengths.sort()
    end_ids = [backend.eos_id] if win.suffix_complete else []
    layout = build_layout(lengths, win.suffix_ids, backend.canvas, end_ids=end_ids, device=backend.device)
    pins = layout.pins
    scored = torch.zeros_like(pins.mask)
    for row, length in enumerate(lengths):
        scored[row, length:length + min(24, int(pins.mask[row].sum()))] = True
    gen = backend._generator(seed)
    canvas = pins.apply_to_canvas(uniform_noise((len(lengths), backend.canvas), backend.vocab, backend.device, gen))
    captured = []
    decoder = backend._decoder

    def capture(**kwargs):
        out = decoder(**kwargs)
        captured.append(out.logits)
        return out

    backend._decoder = capture
    try:
        score = torch.zeros(len(lengths))
        stopped = torch.zeros(len(lengths), dtype=torch.bool)
        for step, state in enumerate(backend.denoise(kv, canvas, steps=steps, pins=pins, span=layout.span,
                                                     generator=gen), start=1):
            logits = captured[-1]
            logp = logits.gather(-1, pins.tokens.unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1)
            w = scored.to(logp.dtype)
            now = (logp * w).sum(-1) / w.sum(-1).clamp(min=1.0)
            score = torch.where(stopped, score, now)  # a stopped row keeps the score of its last step
            stopped = state.finished.clone()
            if step == steps or bool(stopped.all()):
                break
    finally:
        backend._decoder = decoder
    rows = [(extract_middle(state.argmax[r, :length].tolist(), win.suffix_ids, backend.stop_ids),
             float(score[r]), length) for r, length in enumerate(lengths)]
    return max(rows, key=lambda c: (c[1], -c[2]))[0]


def new_rule_middle(backend, case: Case, *, steps: int, seed: int) -> list[int]:
    """What the backend returns now, through the public engine API."""
    from engine.engine import Engine
    from engine.types import InfillRequest

    result = Engine(backend).infill(InfillRequest(case.prefix, case.suffix, max_new_tokens=MAX_NEW_TOKENS,
                                                  steps=steps, seed=seed))
    return backend.tokenizer(result.middle, add_special_tokens=False)["input_ids"]


@dataclass
class Score:
    cases: int = 0
    right_length: int = 0
    exact: int = 0

    def add(self, got: list[int], want: list[int]) -> None:
        self.cases += 1
        self.right_length += len(got) == len(want)
        self.exact += got == want


def compare(backend, test_cases: list[Case], *, steps: int = 16) -> dict[str, Score]:
    """Both rules on every case (the same seed per case for both)."""
    out = {"old": Score(), "new": Score()}
    for i, case in enumerate(test_cases):
        out["old"].add(old_rule_middle(backend, case, steps=steps, seed=i), case.middle)
        out["new"].add(new_rule_middle(backend, case, steps=steps, seed=i), case.middle)
    return out
