"""Masked-diffusion backend: any transformers model with a bidirectional masked-LM head.

Prompt layout: ``prefix_ids + canvas + suffix_ids`` where the canvas starts as
``max_new_tokens`` mask tokens.  Each step runs one forward pass over the whole
layout (every canvas position sees both sides) and a sampler commits some canvas
positions.  The middle length is decided by the model through the filler token
(see ``engine.samplers``); ``fixed_length`` requests forbid the filler.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from engine import branching
from engine.backends.base import DraftGenerator
from engine.backends.keystroke_reuse import Base
from engine.backends.masked_forward import StepForwards
from engine.branching import denoise_branches
from engine.cancellation import CancellationToken
from engine.context_format import prompt_context
from engine.samplers import CanvasState, choose, forbid_tokens, grow
from engine.types import Alternative, Draft, InfillRequest, InfillResult
from engine.window import Window, build_window

#: tokens committed per step that the default step budget aims at, for fixed-length canvases
DEFAULT_TOKENS_PER_STEP = 4
#: prompts are padded (attention-masked) to a multiple of this many tokens: CPU
#: kernels keep per-shape caches that are never freed (about 2 MB per new prompt
#: length, measured with `diffill bench soak`), so a server that saw every length
#: from 1 to the context size would hold hundreds of MB; buckets bound that
SHAPE_BUCKET = 64
#: encoder families whose padding is fully masked by ``attention_mask``; other
#: models (e.g. LLaDA/Dream with their own code) run unpadded
#: steps between full forwards where the context's keys and values are reused
#: (``engine.backends.encoder_cache``).  Measured on 100 held-out single-line cases
#: (docs/BENCHMARKS.md, issue 15): 32 (one full forward per 32-token canvas) kept
#: exact match (8 %) and edit similarity (53.4 vs 52.8) of a full forward every
#: step, at 836 instead of 2,019 ms p50 on the 2-core CPU
DEFAULT_REFRESH = 32
PADDABLE_MODEL_TYPES = frozenset({"modernbert", "bert", "roberta", "xlm-roberta", "distilbert", "electra",
                                  "deberta-v2", "camembert"})


@dataclass
class MaskedModelInfo:
    mask_id: int
    filler_id: int | None
    forbidden_ids: list[int]
    max_positions: int
    default_context: int
    #: tokens the model saw around whole documents (e.g. Dream's BOS/EOS): put
    #: before the prefix / after the suffix when the window reaches the file's start / end
    document_start: int | None = None
    document_end: int | None = None

    def markers(self) -> int:
        """Prompt positions the document markers may take."""
        return (self.document_start is not None) + (self.document_end is not None)

    def frame(self, window: Window) -> tuple[list[int], list[int]]:
        """Prefix and suffix ids with the document markers that apply to ``window``."""
        head = [self.document_start] if self.document_start is not None and not window.prefix_cut else []
        tail = [self.document_end] if self.document_end is not None and not window.suffix_cut else []
        return head + list(window.prefix_ids), list(window.suffix_ids) + tail


class MaskedDiffusionBackend:
    """Runs denoising steps for one loaded masked-LM."""

    name = "masked-diffusion"

    def __init__(self, model, tokenizer, info: MaskedModelInfo, *, model_path: str,
                 device: str, dtype: str, context_tokens: int) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.info = info
        self.model_path = model_path
        self.device = device
        self.dtype = dtype
        self.context_tokens = context_tokens
        # ModernBERT-style models: run the head on canvas positions only
        self._split_head = all(hasattr(model, a) for a in ("model", "head", "decoder"))
        model_type = getattr(getattr(model, "config", None), "model_type", None)
        self.shape_bucket = SHAPE_BUCKET if model_type in PADDABLE_MODEL_TYPES else 1
        #: what the last ``reuse_previous`` request whose full first forward was done kept
        self._base: Base | None = None

    @property
    def previous(self) -> Base | None:
        """What the next ``reuse_previous`` request may start from (None: nothing yet)."""
        return self._base

    def forget_previous(self) -> None:
        """Let the next request start from scratch (experiments that pair requests)."""
        self._base = None

    def padded_length(self, length: int) -> int:
        """``length`` rounded up to the shape bucket, within the model's positions."""
        bucket = self.shape_bucket
        return max(length, min(self.info.max_positions, -(-length // bucket) * bucket))

    # -- one forward ----------------------------------------------------------------
    @torch.inference_mode()
    def canvas_logits(self, input_ids: torch.Tensor, start: int, stop: int,
                      attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (batch, stop-start, vocab) for the canvas slice of ``input_ids``."""
        kwargs = {} if attention_mask is None else {"attention_mask": attention_mask.expand(input_ids.shape[0], -1)}
        if self._split_head:
            hidden = self.model.model(input_ids=input_ids, **kwargs).last_hidden_state[:, start:stop]
            return self.model.decoder(self.model.head(hidden))
        out = self.model(input_ids=input_ids, **kwargs)
        return out.logits[:, start:stop]

    def steps_for(self, request: InfillRequest) -> int:
        """The step budget.  With an unknown length (the filler ends the middle) the
        default is one step per canvas position: ``grow`` then commits one token per
        forward plus every further one the model is sure of, and stops at the end it
        finds, so short middles take few forwards.  Forcing four per forward wrote
        worse middles with the GPU-trained model (docs/BENCHMARKS.md)."""
        if request.steps is not None:
            return int(request.steps)
        if not request.fixed_length and self.info.filler_id is not None:
            return max(1, int(request.max_new_tokens))
        return max(1, math.ceil(request.max_new_tokens / DEFAULT_TOKENS_PER_STEP))

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def token_counter(self) -> Callable[[str], int]:
        """A token counter safe to call from another thread while ``run`` works
        (its own copy of the Rust tokenizer: a shared one may raise "Already borrowed")."""
        from tokenizers import Tokenizer

        copy = Tokenizer.from_str(self.tokenizer.backend_tokenizer.to_str())
        return lambda text: len(copy.encode(text, add_special_tokens=False).ids) if text else 0

    def context_ids(self, request: InfillRequest, context: int, canvas: int) -> list[int]:
        """Other files' snippets in the training format (``engine.context_format``:
        file headers, most relevant last, then the cursor file's header), within
        ``context_room`` so that the cursor's own file keeps enough room."""
        if not request.context:
            return []
        text = prompt_context(request, self.count_tokens, context, canvas)
        return self.tokenizer.encode(text, add_special_tokens=False) if text else []

    # -- the loop -------------------------------------------------------------------
    def run(self, request: InfillRequest, cancel: CancellationToken) -> DraftGenerator:
        t0 = time.perf_counter()
        canvas = int(request.max_new_tokens)
        context = min(int(request.context_tokens or self.context_tokens), self.info.max_positions)
        if canvas + 2 > context:
            canvas = max(1, context - 2)
        head = self.context_ids(request, context, canvas)
        window = build_window(self.tokenizer, request.prefix, request.suffix,
                              context - len(head) - self.info.markers(), canvas)
        prefix_ids, suffix_ids = self.info.frame(window)
        prefix_ids = head + prefix_ids  # other files first, as in training (engine.context_format)
        t_window = time.perf_counter()

        dev = torch.device(self.device)
        filler = None if request.fixed_length else self.info.filler_id
        state = CanvasState.empty(canvas, self.info.mask_id, filler, dev, others=request.alternatives > 1)
        prefix = torch.tensor(prefix_ids, dtype=torch.long, device=dev)
        suffix = torch.tensor(suffix_ids, dtype=torch.long, device=dev)
        start, stop = prefix.numel(), prefix.numel() + canvas
        forbidden = list(self.info.forbidden_ids)
        if filler is None and self.info.filler_id is not None:
            forbidden.append(self.info.filler_id)
        generator = None
        if request.seed is not None:
            generator = torch.Generator(device="cpu").manual_seed(int(request.seed))

        length = start + canvas + suffix.numel()
        pad = self.padded_length(length) - length
        padding = torch.full((pad,), self.info.mask_id, dtype=torch.long, device=dev)
        attention_mask = None
        if pad:
            attention_mask = torch.ones(1, length + pad, dtype=torch.long, device=dev)
            attention_mask[0, length:] = 0

        steps = self.steps_for(request)
        pace = math.ceil(canvas / steps)  # commits per step the budget implies
        forwards = 0
        forward_ms = 0.0
        forward = self._forward_for(request, length, pad, start, stop, attention_mask, cancel)
        for step in range(steps):
            if state.done():
                break
            cancel.raise_if_cancelled()
            input_ids = torch.cat([prefix, state.ids, suffix, padding])[None]
            tf = time.perf_counter()
            logits = forward(input_ids, step)[0].float()
            forward_ms += (time.perf_counter() - tf) * 1000
            forwards += 1
            if step == 0 and request.reuse_previous:
                # a base as soon as the full first forward is done (it runs to its end even
                # when cancelled): the next keystroke usually cancels this request (issue 15)
                self._base = forward.new_base() or self._base
                cancel.raise_if_cancelled()
            logits = forbid_tokens(logits, forbidden)
            if generator is not None and dev.type != "cpu":
                logits = logits.cpu()
            if filler is None:  # fixed length: commit the surest positions anywhere
                choose(logits, state, steps - step, request.sampler, request.threshold, generator, min_commit=pace)
            else:  # unknown length: grow the middle from the left until the filler (engine.samplers)
                grow(logits, state, steps - step, request.sampler, request.threshold, min_commit=pace)
            if not state.done():
                yield Draft(step=step + 1, steps=steps, text=self._decode(state.middle_ids()),
                            confidence=state.middle_confidence(), done=False)

        if request.reuse_previous:
            self._base = forward.new_base() or self._base
        ids = state.middle_ids()
        middle, ends = self._decode_with_ends(ids)
        alternatives: list[Alternative] = []
        branch_forwards = 0
        if request.alternatives > 1 and filler is not None:
            def layouts(states: list[CanvasState]) -> torch.Tensor:
                return torch.stack([torch.cat([prefix, st.ids, suffix, padding]) for st in states])

            def decide(rows: torch.Tensor, st: CanvasState, steps_left: int) -> None:
                grow(forbid_tokens(rows.float(), forbidden), st, steps_left, request.sampler, request.threshold,
                     min_commit=pace)

            branched, branch_forwards = denoise_branches(state, request.alternatives - 1, forward.branches,
                                                         layouts, decide, min(steps, branching.PASSES), cancel)
            alternatives = self._distinct(middle, branched)
        total_ms = (time.perf_counter() - t0) * 1000
        result = InfillResult(
            middle=middle,
            forwards=forwards + branch_forwards,
            tokens=len(ids),
            timings={
                "total_ms": total_ms,
                "window_ms": (t_window - t0) * 1000,
                "forward_ms": forward_ms,
                "prompt_tokens": float(len(prefix_ids) + len(suffix_ids)),
                "context_tokens": float(len(head)),
                "reused_previous": float(forward.reused),
                "branch_forwards": float(branch_forwards),
            },
            confidence=state.middle_confidence(),
            token_ends=ends,
            alternatives=alternatives,
        )
        yield Draft(step=forwards, steps=steps, text=middle, confidence=result.confidence, done=True)
        return result

    def _forward_for(self, request: InfillRequest, length: int, pad: int, start: int, stop: int,
                     attention_mask: torch.Tensor | None, cancel: CancellationToken) -> StepForwards:
        """The forwards of this request (``engine.backends.masked_forward``)."""
        refresh = int(request.refresh if request.refresh is not None else DEFAULT_REFRESH)
        return StepForwards(self.model, lambda ids: self.canvas_logits(ids, start, stop, attention_mask),
                            length=length, padded=length + pad, start=start, stop=stop, refresh=refresh,
                            cancel=cancel, base=self._base if request.reuse_previous else None,
                            leaves_base=request.reuse_previous)

    def _distinct(self, primary: str, branched: list[CanvasState]) -> list[Alternative]:
        """The branches' middles, best first, without repeats or the primary."""
        seen, out = {primary}, []
        for st in branched:
            text, ends = self._decode_with_ends(st.middle_ids())
            if text and text not in seen:
                seen.add(text)
                out.append(Alternative(text, st.middle_confidence(), ends))
        return out

    def _decode_with_ends(self, ids: list[int]) -> tuple[str, list[int]]:
        """The text of ``ids`` and where each token ends in it, in characters (decoded
        prefix by prefix: a token that is part of a character ends with that character)."""
        text = self._decode(ids)
        return text, [len(self._decode(ids[:i + 1])) for i in range(len(ids))]

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False) if ids else ""

