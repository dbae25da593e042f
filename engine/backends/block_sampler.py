"""Entropy-bound denoising for DiffusionGemma, as plain tensor functions.

Why our own loop instead of ``model.generate``: an editor needs known tokens
(the suffix) pinned inside the canvas, several middle-length candidates in one
batch, stopping judged on the middle only, a per-document prompt cache,
cancellation between steps and no host wait per step.  ``generate`` does none
of these.  With pinning off and the stop span covering the whole canvas this
loop draws the same random numbers in the same order as ``generate`` and so
produces the same tokens (tested in ``tests/test_block_diffusion.py``).

Shapes: ``B`` rows (candidates), canvas ``C`` tokens, vocabulary ``V``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

#: value given to every non-pinned token at a pinned position; finite so that
#: entropy and softmax stay exact zeros instead of NaN
PIN_FLOOR = -1.0e4


@dataclass(frozen=True)
class SamplerSettings:
    """Defaults follow ``DiffusionGemmaGenerationConfig`` except the step cap,
    which is small because an editor wants a fill in tens of milliseconds."""

    steps: int = 16
    t_min: float = 0.4
    t_max: float = 0.8
    entropy_bound: float = 0.1
    stability_threshold: int = 1
    confidence_threshold: float = 0.005


@dataclass
class Pins:
    """Known canvas tokens: ``mask`` (B, C) bool, ``tokens`` (B, C) long."""

    mask: torch.Tensor
    tokens: torch.Tensor

    def apply_to_canvas(self, canvas: torch.Tensor) -> torch.Tensor:
        return torch.where(self.mask, self.tokens, canvas)

    def apply_to_scores(self, scores: torch.Tensor) -> torch.Tensor:
        """One-hot the pinned positions (a LogitsProcessor over (B, C, V) scores):
        zero entropy, so they are always accepted, never renoised, cost nothing
        of the entropy budget, and self-conditioning sees the true token."""
        index = self.tokens.unsqueeze(-1)
        mask = self.mask.unsqueeze(-1)
        kept = scores.gather(-1, index)  # non-pinned positions get their own value back
        out = scores.masked_fill(mask, PIN_FLOOR)
        return out.scatter_(-1, index, torch.where(mask, torch.zeros_like(kept), kept))


class PinnedTokensLogitsProcessor:
    """The same pinning as a transformers ``LogitsProcessor`` for
    ``DiffusionGemmaForBlockDiffusion.generate(logits_processor=[...])``, which
    hands it (batch, canvas, vocab) scores before the temperature schedule.
    Seed the first canvas with the pinned tokens via ``decoder_input_ids``."""

    def __init__(self, pins: Pins) -> None:
        self.pins = pins

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, cur_step=None) -> torch.Tensor:
        return self.pins.apply_to_scores(scores)


def temperature(cur_step: int, steps: int, s: SamplerSettings) -> float:
    """Linear schedule; ``cur_step`` counts the steps *remaining* (steps..1),
    as in transformers, so the first step is the hottest."""
    return s.t_min + (s.t_max - s.t_min) * (cur_step / steps)


def token_entropy(scores: torch.Tensor) -> torch.Tensor:
    """Entropy per position of softmax(scores): (B, C, V) -> (B, C).

    Uses the same arithmetic as ``torch.distributions.Categorical`` so that the
    acceptance order matches ``generate`` bit for bit on ties."""
    logp = scores - scores.logsumexp(dim=-1, keepdim=True)
    probs = torch.softmax(logp, dim=-1)
    logp = torch.clamp(logp, min=torch.finfo(logp.dtype).min)
    return -(logp * probs).sum(-1)


def entropy_bound_accept(entropy: torch.Tensor, bound: float) -> torch.Tensor:
    """Accept the lowest-entropy positions while sum(entropy) - max(entropy) <= bound
    (an upper bound on their joint mutual information): (B, C) -> (B, C) bool."""
    sorted_ent, order = torch.sort(entropy, dim=-1, descending=False)
    chosen = (torch.cumsum(sorted_ent, dim=-1) - sorted_ent) <= bound
    return torch.scatter(torch.zeros_like(chosen), -1, order, chosen)


def uniform_noise(shape: tuple[int, int], vocab: int, device, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randint(0, vocab, shape, device=device, generator=generator)


class SpanStopper:
    """Stop a row when its argmax over the judged span has not changed for
    ``stability_threshold`` steps and the span's mean entropy is below
    ``confidence_threshold``.  ``span`` None judges the whole canvas (what
    ``generate`` does); for infill it is the middle only, because pinned
    positions have zero entropy and would hide an unsettled middle."""

    def __init__(self, settings: SamplerSettings, span: torch.Tensor | None) -> None:
        self.settings = settings
        self.span = span
        self.history: torch.Tensor | None = None

    def __call__(self, argmax: torch.Tensor, entropy: torch.Tensor) -> torch.Tensor:
        k = self.settings.stability_threshold
        if k == 0:
            stable = torch.ones(argmax.shape[0], dtype=torch.bool, device=argmax.device)
        else:
            if self.history is None:
                self.history = torch.full((k, *argmax.shape), -1, dtype=argmax.dtype, device=argmax.device)
            same = self.history == argmax.unsqueeze(0)
            if self.span is not None:
                same = same | ~self.span.unsqueeze(0)
            stable = same.all(dim=-1).all(dim=0)
            self.history = torch.roll(self.history, shifts=-1, dims=0)
            self.history[-1] = argmax
        if self.span is None:
            mean_entropy = entropy.mean(dim=-1)
        else:
            weight = self.span.to(entropy.dtype)
            mean_entropy = (entropy * weight).sum(-1) / weight.sum(-1).clamp(min=1.0)
        return stable & (mean_entropy < self.settings.confidence_threshold)


@dataclass
class StepState:
    """Everything the loop carries from one step to the next (all on device).

    ``argmax`` is the draft/final answer (as in ``generate``), ``canvas`` the
    noisy canvas fed to the next step, ``sc_logits`` the self-conditioning
    input and ``confidence`` the model's probability of each argmax token
    (from the un-tempered logits)."""

    canvas: torch.Tensor
    argmax: torch.Tensor
    sc_logits: torch.Tensor | None
    finished: torch.Tensor
    confidence: torch.Tensor


def initial_state(canvas: torch.Tensor) -> StepState:
    b, c = canvas.shape
    return StepState(canvas=canvas, argmax=canvas, sc_logits=None,
                     finished=torch.zeros(b, dtype=torch.bool, device=canvas.device),
                     confidence=torch.zeros(b, c, device=canvas.device))


def denoise_step(raw_logits: torch.Tensor, state: StepState, *, cur_step: int, steps: int,
                 settings: SamplerSettings, pins: Pins | None, stopper: SpanStopper | None,
                 generator: torch.Generator | None, sc_dtype: torch.dtype) -> StepState:
    """One step after the decoder forward: pin, temper, sample, accept, renoise, stop.

    The random draws (one multinomial over the flattened canvas, then one
    uniform canvas) are in ``generate``'s order so that seeded runs agree."""
    b, c, vocab = raw_logits.shape
    scores = pins.apply_to_scores(raw_logits) if pins is not None else raw_logits
    scores = scores / temperature(cur_step, steps, settings)
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32)
    sampled = torch.multinomial(probs.view(-1, vocab), num_samples=1, generator=generator).view(b, c)
    argmax = scores.argmax(dim=-1)
    entropy = token_entropy(scores)
    accepted = entropy_bound_accept(entropy, settings.entropy_bound)
    canvas = torch.where(accepted, sampled, state.canvas)
    noise = uniform_noise((b, c), vocab, raw_logits.device, generator)
    canvas = torch.where(accepted, canvas, noise)
    if pins is not None:
        canvas = pins.apply_to_canvas(canvas)

    lse = raw_logits.logsumexp(dim=-1)
    confidence = torch.exp(raw_logits.gather(-1, argmax.unsqueeze(-1)).squeeze(-1) - lse)

    finished = state.finished
    if stopper is not None:
        # rows that already stopped keep their answer (batch-size independence)
        done = finished.unsqueeze(-1)
        argmax = torch.where(done, state.argmax, argmax)
        canvas = torch.where(done, state.canvas, canvas)
        confidence = torch.where(done, state.confidence, confidence)
        if state.sc_logits is not None:
            scores = torch.where(done.unsqueeze(-1), state.sc_logits.to(scores.dtype), scores)
        finished = finished | stopper(argmax, entropy)
    return StepState(canvas=canvas, argmax=argmax, sc_logits=scores.to(sc_dtype), finished=finished,
                     confidence=confidence)
