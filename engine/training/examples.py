"""Training examples for the masked-diffusion objective.

Two kinds, mixed:

* **random masking** (MDLM-style): a window of a file, every token masked with
  probability ``t ~ U(t_min, 1)``, the model predicts the originals;
* **editor spans**: a file is split into prefix / middle / suffix at editor-like
  places (whole lines, the rest of a line after a cursor, a short span), each
  part tokenized separately exactly as the engine does at inference, and the
  middle is written into a canvas padded with end-of-infill filler tokens to a
  random canvas size, so the model learns where the middle ends.

Span examples may carry context from other files before the prefix
(``engine.context_format``), so the model learns to use repository context.

Filler positions after the first one are down-weighted: at inference they are
forced once the first filler is committed, so only the end decision matters.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import torch

IGNORE = -100


@dataclass
class ExampleConfig:
    seq_len: int = 1024
    span_fraction: float = 0.6
    t_min: float = 0.05
    max_canvas_extra: int = 64
    later_filler_weight: float = 0.1
    #: share of span examples whose canvas shows a left part of the middle and
    #: masks the rest, as the canvas looks while ``engine.samplers.grow`` writes it
    left_revealed: float = 0.5


class ExampleBuilder:
    def __init__(self, tokenizer, mask_id: int, filler_id: int, pad_id: int, cfg: ExampleConfig, seed: int = 0):
        self.tok = tokenizer
        self.mask_id, self.filler_id, self.pad_id = mask_id, filler_id, pad_id
        self.cfg = cfg
        self.rng = random.Random(seed)

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text).ids if text else []

    # -- choosing a window and a middle ---------------------------------------------
    def _window_lines(self, text: str) -> list[str]:
        lines = text.splitlines(keepends=True)
        approx_lines = max(8, self.cfg.seq_len // 9)  # ~9 tokens per line of Python
        if len(lines) > approx_lines:
            start = self.rng.randrange(0, len(lines) - approx_lines + 1)
            lines = lines[start:start + approx_lines]
        return lines

    def _split(self, lines: list[str]) -> tuple[str, str, str]:
        """prefix, middle, suffix at an editor-like place."""
        rng = self.rng
        candidates = [i for i, line in enumerate(lines) if line.strip()]
        if not candidates:
            candidates = list(range(len(lines)))
        i = rng.choice(candidates)
        kind = rng.random()
        if kind < 0.5:  # whole lines (HumanEval single/multi-line style)
            n = 1 if rng.random() < 0.5 else min(len(lines) - i, rng.randint(2, 8))
            return "".join(lines[:i]), "".join(lines[i:i + n]), "".join(lines[i + n:])
        line = lines[i]
        body = line.rstrip("\n")
        indent = len(body) - len(body.lstrip())
        if kind < 0.8 and len(body) > indent + 1:  # cursor inside a line: complete the rest of it
            cut = rng.randint(indent, len(body) - 1)
            return "".join(lines[:i]) + body[:cut], body[cut:], line[len(body):] + "".join(lines[i + 1:])
        text = "".join(lines)  # a random short span of characters
        start = len("".join(lines[:i])) + rng.randint(0, max(0, len(body) - 1))
        end = min(len(text), start + rng.randint(1, 120))
        return text[:start], text[start:end], text[end:]

    # -- building tensors -------------------------------------------------------------
    def _mask(self, targets: list[int], t: float) -> tuple[list[int], list[int], list[bool]]:
        """Mask each target with probability ``t`` (at least one): inputs, labels, masked."""
        masked = [self.rng.random() < t for _ in targets]
        if targets and not any(masked):
            masked[self.rng.randrange(len(targets))] = True
        inputs = [self.mask_id if m else tok for tok, m in zip(targets, masked)]
        labels = [tok if m else IGNORE for tok, m in zip(targets, masked)]
        return inputs, labels, masked

    def span_example(self, text: str, context: str = "") -> tuple[list[int], list[int], list[float]]:
        """An editor-like infill example; ``context`` (other files, already formatted by
        ``engine.context_format``) goes before the prefix, kept whole within a quarter of the row."""
        cfg = self.cfg
        prefix, middle, suffix = self._split(self._window_lines(text))
        mid = self.encode(middle)[: cfg.seq_len // 4]
        if not mid:
            return self.random_example(text)
        ctx = self.encode(context)[-(cfg.seq_len // 4):] if context else []
        # at least one filler: a canvas exactly as long as the middle would teach the
        # model that the canvas size is the middle's length (it is not at inference)
        extra = self.rng.randint(1, cfg.max_canvas_extra)
        canvas_targets = mid + [self.filler_id] * extra
        room = cfg.seq_len - len(canvas_targets) - len(ctx)
        pre, suf = self.encode(prefix), self.encode(suffix)
        pre_budget = max(room - min(len(suf), room // 3), room * 2 // 3) if len(pre) > room * 2 // 3 else len(pre)
        pre = pre[-pre_budget:] if pre_budget > 0 else []
        suf = suf[: max(0, room - len(pre))]
        if self.rng.random() < cfg.left_revealed:
            shown = self.rng.randint(0, len(mid))
            masked = [j >= shown for j in range(len(canvas_targets))]
            canvas_in = canvas_targets[:shown] + [self.mask_id] * (len(canvas_targets) - shown)
            canvas_labels = [IGNORE] * shown + canvas_targets[shown:]
        else:
            canvas_in, canvas_labels, masked = self._mask(canvas_targets, self.rng.uniform(cfg.t_min, 1.0))
        canvas_w = [0.0 if not m else (cfg.later_filler_weight if (tgt == self.filler_id and j > len(mid)) else 1.0)
                    for j, (tgt, m) in enumerate(zip(canvas_targets, masked))]
        head = ctx + pre
        inputs = head + canvas_in + suf
        labels = [IGNORE] * len(head) + canvas_labels + [IGNORE] * len(suf)
        weights = [0.0] * len(head) + canvas_w + [0.0] * len(suf)
        return inputs, labels, weights

    def random_example(self, text: str) -> tuple[list[int], list[int], list[float]]:
        ids = self.encode("".join(self._window_lines(text)))[: self.cfg.seq_len]
        inputs, labels, masked = self._mask(ids, self.rng.uniform(self.cfg.t_min, 1.0))
        return inputs, labels, [1.0 if m else 0.0 for m in masked]

    def example(self, text: str, context: str = ""):
        if self.rng.random() < self.cfg.span_fraction:
            return self.span_example(text, context)
        return self.random_example(text)

    def batch(self, texts: list[str], contexts: list[str] | None = None,
              width: int | None = None) -> dict[str, torch.Tensor]:
        """Rows padded to the longest (or to ``width``, for fixed shapes on a GPU)."""
        contexts = contexts or [""] * len(texts)
        rows = [self.example(t, c) for t, c in zip(texts, contexts)]
        width = width or max(len(r[0]) for r in rows)
        n = len(rows)
        input_ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        labels = torch.full((n, width), IGNORE, dtype=torch.long)
        weights = torch.zeros((n, width), dtype=torch.float32)
        attention = torch.zeros((n, width), dtype=torch.long)
        for i, (inp, lab, w) in enumerate(rows):
            k = len(inp)
            input_ids[i, :k] = torch.tensor(inp)
            labels[i, :k] = torch.tensor(lab)
            weights[i, :k] = torch.tensor(w)
            attention[i, :k] = 1
        return {"input_ids": input_ids, "labels": labels, "weights": weights, "attention_mask": attention}
