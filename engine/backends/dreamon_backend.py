"""DreamOn's variable-length infill behind the ordinary backend interface.

The middle starts as a few masks and changes length while it is denoised (the
family's facts and sources are in ``engine.backends.families.dreamon``).  One
forward pass per step over ``prefix + middle + suffix``; then:

1. among the masked positions, take the one whose predicted distribution has
   the lowest entropy (computed over the top-p nucleus) and commit its most
   likely token;
2. ``<|expand|>`` committed: that position becomes two masks (the middle grows;
   forbidden once it is ``max_new_tokens`` long or the expansion budget is spent);
3. ``<|delete|>`` (end-of-text) committed: that position and every masked
   position after it are removed (the middle shrinks).

It stops when no mask is left or the step budget is spent (positions still
masked then are dropped).  A ``fixed_length`` request starts with
``max_new_tokens`` masks and forbids both length tokens (DreamOn's "fixed
canvas" baseline).  Only the middle and the step loop differ from
``MaskedDiffusionBackend``: windowing, document markers, the shifted-logits
forward and decoding are the same.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from engine.backends.base import DraftGenerator
from engine.backends.masked import MaskedDiffusionBackend, MaskedModelInfo
from engine.cancellation import CancellationToken
from engine.samplers import NEG_INF, forbid_tokens
from engine.types import Draft, InfillRequest, InfillResult
from engine.window import build_window

#: masks the middle starts with (DreamOn eval/configs/eval_infill.yaml: min_gen_len 4)
INITIAL_MASKS = 4
#: forward passes per token of max_new_tokens by default (the evaluation: 128 steps for 64)
STEPS_PER_TOKEN = 2
#: nucleus the entropy is computed over (the evaluation's top_p)
TOP_P = 0.9


def nucleus(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """``probs`` restricted to the smallest set of tokens whose mass reaches ``top_p``
    (always at least the most likely one), renormalised; rows are positions."""
    if top_p >= 1.0:
        return probs
    ordered, order = torch.sort(probs, dim=-1, descending=True)
    before = torch.cumsum(ordered, dim=-1) - ordered  # mass of the more likely tokens
    keep_sorted = before < top_p
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    kept = torch.where(keep, probs, torch.zeros_like(probs))
    return kept / kept.sum(dim=-1, keepdim=True)


def choose_position(logits: torch.Tensor, top_p: float) -> tuple[int, int, float]:
    """(row, token, probability) of the lowest-entropy row of ``logits`` (rows: masked positions)."""
    probs = nucleus(torch.softmax(logits.float(), dim=-1), top_p)
    negative_entropy = (probs * torch.log(probs + 1e-10)).sum(dim=-1)
    row = int(torch.argmax(negative_entropy))
    prob, token = probs[row].max(dim=-1)
    return row, int(token), float(prob)


class DreamOnBackend(MaskedDiffusionBackend):
    """A masked-diffusion backend whose canvas expands and contracts (DreamOn)."""

    name = "dreamon"

    def __init__(self, model, tokenizer, info: MaskedModelInfo, *, expand_id: int, delete_id: int,
                 model_path: str, device: str, dtype: str, context_tokens: int,
                 initial_masks: int = INITIAL_MASKS, top_p: float = TOP_P) -> None:
        super().__init__(model, tokenizer, info, model_path=model_path, device=device, dtype=dtype,
                         context_tokens=context_tokens)
        self.expand_id = int(expand_id)
        self.delete_id = int(delete_id)
        self.initial_masks = int(initial_masks)
        self.top_p = float(top_p)

    def steps_for(self, request: InfillRequest) -> int:
        if request.steps is not None:
            return int(request.steps)
        return max(1, STEPS_PER_TOKEN * int(request.max_new_tokens))

    def run(self, request: InfillRequest, cancel: CancellationToken) -> DraftGenerator:
        t0 = time.perf_counter()
        context = min(int(request.context_tokens or self.context_tokens), self.info.max_positions)
        longest = max(1, min(int(request.max_new_tokens), context - 2))
        head = self.context_ids(request, context, longest)  # other files first, as the masked backend does
        window = build_window(self.tokenizer, request.prefix, request.suffix,
                              context - len(head) - self.info.markers(), longest)
        prefix_ids, suffix_ids = self.info.frame(window)
        prefix_ids = head + prefix_ids
        t_window = time.perf_counter()
        steps = self.steps_for(request)
        state = Middle(self.info.mask_id, [], [])
        stream = self.denoise(prefix_ids, suffix_ids, longest, steps, cancel, fixed=request.fixed_length)
        for step, state in enumerate(stream, start=1):
            if state.open():
                yield Draft(step=step, steps=steps, text=self._decode(state.kept()),
                            confidence=state.confidence(), done=False)
        text, confidence = self._decode(state.kept()), state.confidence()
        result = InfillResult(
            middle=text, forwards=state.forwards, tokens=len(state.kept()),
            timings={"total_ms": (time.perf_counter() - t0) * 1000, "window_ms": (t_window - t0) * 1000,
                     "forward_ms": state.forward_ms, "prompt_tokens": float(len(prefix_ids) + len(suffix_ids))},
            confidence=confidence,
        )
        yield Draft(step=state.forwards, steps=steps, text=text, confidence=confidence, done=True)
        return result

    def denoise(self, prefix_ids: list[int], suffix_ids: list[int], longest: int, steps: int,
                cancel: CancellationToken, fixed: bool = False) -> Iterator[Middle]:
        """Yield the middle after every forward pass (see module doc); token ids in and out.
        ``fixed``: ``longest`` masks from the start, no expanding or deleting."""
        mask = self.info.mask_id
        dev = torch.device(self.device)
        prefix = torch.tensor(prefix_ids, dtype=torch.long, device=dev)
        suffix = torch.tensor(suffix_ids, dtype=torch.long, device=dev)
        start = prefix.numel()
        initial = longest if fixed else min(self.initial_masks, longest)
        state = Middle(mask, [mask] * initial, [0.0] * initial)
        budget = longest  # expansions allowed (the evaluation: max_gen_len)
        for _ in range(steps):
            masked = [i for i, token in enumerate(state.ids) if token == mask]
            if not masked:
                return
            cancel.raise_if_cancelled()
            ids = torch.cat([prefix, torch.tensor(state.ids, dtype=torch.long, device=dev), suffix])[None]
            tf = time.perf_counter()
            logits = self.canvas_logits(ids, start, start + len(state.ids))[0].float()
            state.forward_ms += (time.perf_counter() - tf) * 1000
            state.forwards += 1
            rows = forbid_tokens(logits[masked], list(self.info.forbidden_ids))
            if fixed:
                rows[:, [self.expand_id, self.delete_id]] = NEG_INF
            elif len(state.ids) >= longest or budget == 0:
                rows[:, self.expand_id] = NEG_INF
            row, token, prob = choose_position(rows, self.top_p)
            pos = masked[row]
            if token == self.delete_id:
                state.remove({i for i in masked if i >= pos})
            elif token == self.expand_id:
                state.ids[pos:pos + 1] = [mask, mask]
                state.probs[pos:pos + 1] = [0.0, 0.0]
                budget -= 1
            else:
                state.ids[pos] = token
                state.probs[pos] = prob
            yield state


@dataclass
class Middle:
    """The middle being denoised: token ids (masks included) and commit probabilities."""

    mask: int
    ids: list[int]
    probs: list[float]
    forwards: int = 0
    forward_ms: float = 0.0

    def remove(self, positions: set[int]) -> None:
        self.ids = [t for i, t in enumerate(self.ids) if i not in positions]
        self.probs = [p for i, p in enumerate(self.probs) if i not in positions]

    def open(self) -> bool:
        """Whether masks are left, i.e. later steps may still change the middle."""
        return self.mask in self.ids

    def kept(self) -> list[int]:
        """Committed tokens in order (positions still masked left out)."""
        return [t for t in self.ids if t != self.mask]

    def confidence(self) -> list[float]:
        return [p for t, p in zip(self.ids, self.probs) if t != self.mask]
