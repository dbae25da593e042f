"""DiffusionGemma (block diffusion) behind the engine's backend protocol.

One request, top to bottom (``run``):

1. window the prompt (``block_window``) and get its encoder KV from the
   per-document cache, encoding only tokens not seen before (``block_cache``);
2. lay out one canvas row per middle-length candidate with the suffix pinned
   after the middle (``block_canvas``), or, in prompt mode, one free canvas
   after an instruction prompt (``block_prompt``);
3. denoise with the entropy-bound sampler (``block_sampler``), yielding a
   draft after every step; one host sync per step carries the draft and the
   stop flags;
4. pick the candidate the model likes best and return it.

``load`` (in ``block_loading``) is re-exported here for ``engine.loading``.
"""
from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field, replace
from typing import Literal

import torch

from engine.backends.block_cache import PromptCache, PromptKV, build_view, cache_kwarg
from engine.backends.block_canvas import (
    Candidate,
    build_layout,
    candidate_lengths,
    choose,
    extract_middle,
    parses,
)
from engine.backends.block_fixed import FixedShapeKV
from engine.backends.block_prompt import clean_answer, prompt_text
from engine.backends.block_sampler import (
    Pins,
    SamplerSettings,
    SpanStopper,
    StepState,
    denoise_step,
    initial_state,
    uniform_noise,
)
from engine.backends.block_window import build_window, prefix_ids, suffix_ids
from engine.cancellation import CancellationToken
from engine.types import Draft, InfillRequest, InfillResult

Mode = Literal["pinned", "prompt"]
#: prompt tokens (before the canvas) when neither the user nor the model says otherwise
DEFAULT_PROMPT_TOKENS = 4096
MODEL_TYPE = "diffusion_gemma"


@dataclass
class BlockOptions:
    """Knobs that are not part of a request.

    ``mode``: "pinned" (suffix pinned in the canvas) or "prompt" (instruction
    prompt fallback).  ``fixed_shape``: pad the prompt KV to a bucket so the
    decoder step has the same shapes for every prompt in it (``block_fixed``).
    ``compile``: torch.compile the step with CUDA graphs ("reduce-overhead")
    on CUDA; implies ``fixed_shape``.  Both off by default; the compiled path
    is unmeasured (no GPU was available when it was written)."""

    mode: Mode = "pinned"
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    max_candidates: int = 4
    cache_entries: int = 4
    fixed_shape: bool = False
    compile: bool = False


class BlockDiffusionBackend:
    """A loaded ``DiffusionGemmaForBlockDiffusion`` and its tokenizer."""

    name = "block-diffusion"

    def __init__(self, model, tokenizer, *, model_path: str, device: str, dtype: str,
                 context_tokens: int | None = None, options: BlockOptions | None = None) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.model_path = model_path
        self.device = device
        self.dtype = dtype
        self.options = options or BlockOptions()
        cfg = model.config
        self.text_config = cfg.get_text_config()
        self.canvas = int(cfg.canvas_length)
        self.vocab = int(self.text_config.vocab_size)
        max_pos = int(getattr(self.text_config, "max_position_embeddings", 0) or 1 << 20)
        self.context_tokens = min(int(context_tokens or DEFAULT_PROMPT_TOKENS + self.canvas), max_pos)
        self.cache = PromptCache(model.model.encoder, self.text_config, self.options.cache_entries)
        self.bos_id = _first(getattr(tokenizer, "bos_token_id", None), self.text_config.bos_token_id)
        self.eos_id = _first(getattr(tokenizer, "eos_token_id", None), self.text_config.eos_token_id)
        self.stop_ids = _stop_ids(tokenizer, self.text_config, getattr(model, "generation_config", None))
        self._decoder = self.model
        if self.options.compile and str(device).startswith("cuda"):
            self.options.fixed_shape = True
            self._decoder = torch.compile(self.model, mode="reduce-overhead", dynamic=False)
        self._fixed = FixedShapeKV(self.text_config)
        self._cache_kwarg = cache_kwarg(self.model)

    @property
    def mode(self) -> Mode:
        return self.options.mode

    @mode.setter
    def mode(self, value: Mode) -> None:
        if value not in ("pinned", "prompt"):
            raise ValueError(f"mode must be 'pinned' or 'prompt', got {value!r}")
        self.options.mode = value

    # -- the engine protocol -------------------------------------------------

    def run(self, request: InfillRequest, cancel: CancellationToken) -> Generator[Draft, None, InfillResult]:
        """Denoise the middle for ``request``, yielding a draft after each step."""
        t0 = time.perf_counter()
        if self.options.mode == "prompt":
            return (yield from self._run_prompt(request, cancel, t0))
        return (yield from self._run_pinned(request, cancel, t0))

    # -- pinned infill ---------------------------------------------------------

    def _run_pinned(self, request: InfillRequest, cancel: CancellationToken, t0: float):
        budget = self._prompt_budget(request)
        win = build_window(self.tokenizer, request.prefix, request.suffix, prompt_budget=budget,
                           canvas=self.canvas, bos_id=self.bos_id)
        kv, enc = self.cache.encode(self._nonempty(win.ids), self.device, cancel)
        lengths = candidate_lengths(request.max_new_tokens, self.canvas, request.fixed_length,
                                    self.options.max_candidates)
        end_ids = [self.eos_id] if win.suffix_complete and self.eos_id is not None else []
        layout = build_layout(lengths, win.suffix_ids, self.canvas, end_ids=end_ids, device=self.device)
        steps = int(request.steps or self.options.sampler.steps)
        gen = self._generator(request.seed)
        canvas = layout.pins.apply_to_canvas(
            uniform_noise((len(lengths), self.canvas), self.vocab, self.device, gen))
        width = max(lengths)
        scored = layout.scored if layout.has_scored else None
        t1 = time.perf_counter()
        step = 0
        snap = None
        for step, state in enumerate(self.denoise(kv, canvas, steps=steps, pins=layout.pins, span=layout.span,
                                                  generator=gen, cancel=cancel), start=1):
            snap = _snapshot(state, width, scored, layout.span)
            if step < steps and not bool(snap.finished.all()):
                best = int(snap.score.argmax())
                ids = extract_middle(snap.ids[best][: lengths[best]], win.suffix_ids, self.stop_ids)
                yield Draft(step=step, steps=steps, text=self._decode(ids),
                            confidence=snap.confidence[best][: len(ids)], done=False)
            else:
                break
        t2 = time.perf_counter()
        cands = []
        for row, length in enumerate(lengths):
            ids = extract_middle(snap.ids[row][:length], win.suffix_ids, self.stop_ids)
            text = self._decode(ids)
            cands.append(Candidate(row=row, length=length, ids=ids, text=text, score=float(snap.score[row]),
                                   syntax_ok=parses(request.language, request.prefix, text, request.suffix)))
        best = choose(cands)
        conf = snap.confidence[best.row][: len(best.ids)]
        result = InfillResult(middle=best.text, forwards=step, tokens=len(best.ids), confidence=conf,
                              timings=self._timings(t0, t1, t2, enc, rows=len(lengths), length=best.length,
                                                    prompt=len(win.ids) + len(win.suffix_ids)))
        yield Draft(step=step, steps=steps, text=best.text, confidence=conf, done=True)
        return result

    # -- prompt-only fallback ------------------------------------------------

    def _run_prompt(self, request: InfillRequest, cancel: CancellationToken, t0: float):
        budget = self._prompt_budget(request)
        # most of the budget to the prefix, with the same chunked (cache-stable) left cut
        pre = prefix_ids(self.tokenizer, request.prefix, int(budget * 0.7), None)
        post, _ = suffix_ids(self.tokenizer, request.suffix, int(budget * 0.2))
        text = prompt_text(self.tokenizer, self._decode(pre), self._decode(post))
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if self.bos_id is not None and (not ids or ids[0] != self.bos_id):
            ids = [self.bos_id] + ids
        steps = int(request.steps or self.options.sampler.steps)
        gen = self._generator(request.seed)
        step, snap = 0, None
        kv, enc = self.cache.encode(self._nonempty(ids), self.device, cancel)
        canvas = uniform_noise((1, self.canvas), self.vocab, self.device, gen)
        t1 = time.perf_counter()
        limit = min(int(request.max_new_tokens), self.canvas)
        for step, state in enumerate(self.denoise(kv, canvas, steps=steps, generator=gen, cancel=cancel),
                                     start=1):
            snap = _snapshot(state, limit, None, None)
            if step < steps and not bool(snap.finished.all()):
                draft_ids = extract_middle(snap.ids[0], [], self.stop_ids)
                yield Draft(step=step, steps=steps, text=self._decode(draft_ids),
                            confidence=snap.confidence[0][: len(draft_ids)], done=False)
            else:
                break
        t2 = time.perf_counter()
        out_ids = extract_middle(snap.ids[0], [], self.stop_ids)
        middle = clean_answer(self._decode(out_ids), request.suffix)
        conf = snap.confidence[0][: len(out_ids)]
        result = InfillResult(middle=middle, forwards=step, tokens=len(out_ids), confidence=conf,
                              timings=self._timings(t0, t1, t2, enc, rows=1, length=limit, prompt=len(ids)))
        yield Draft(step=step, steps=steps, text=middle, confidence=conf, done=True)
        return result

    # -- the denoising loop ----------------------------------------------------

    @torch.no_grad()
    def denoise(self, kv: PromptKV, canvas: torch.Tensor, *, steps: int, pins: Pins | None = None,
                span: torch.Tensor | None = None, generator: torch.Generator | None = None,
                cancel: CancellationToken | None = None,
                settings: SamplerSettings | None = None) -> Iterator[StepState]:
        """Run up to ``steps`` decoder passes over ``canvas`` (B, C) after the
        prompt ``kv``; yields the device-side state after each.  The caller stops
        iterating when it has seen enough (all rows finished, or cancelled).

        Nothing here syncs with the host: the caller does, once per step."""
        settings = replace(settings or self.options.sampler, steps=steps)
        b, c = canvas.shape
        masks = None
        if self.options.fixed_shape:
            view, masks = self._fixed.view(kv, b, c, self.model.dtype)
        else:
            view = build_view(kv, self.text_config, batch=b)
        start = len(kv)
        positions = torch.arange(start, start + c, dtype=torch.int32, device=canvas.device).unsqueeze(0)
        stopper = SpanStopper(settings, span)
        sc_dtype = self.model.model.decoder.embed_tokens.weight.dtype
        state = initial_state(canvas)
        for cur_step in range(steps, 0, -1):
            if cancel is not None:
                cancel.raise_if_cancelled()
            if self._decoder is not self.model:
                torch.compiler.cudagraph_mark_step_begin()  # the previous step's outputs are consumed
            logits = self._decoder(decoder_input_ids=state.canvas, self_conditioning_logits=state.sc_logits,
                                   decoder_position_ids=positions, **{self._cache_kwarg: view},
                                   decoder_attention_mask=masks).logits
            state = denoise_step(logits, state, cur_step=cur_step, steps=steps, settings=settings, pins=pins,
                                 stopper=stopper, generator=generator, sc_dtype=sc_dtype)
            yield state

    def generate_ids(self, prompt_ids: list[int], *, steps: int, seed: int | None,
                     settings: SamplerSettings | None = None) -> list[int]:
        """One free canvas after ``prompt_ids`` (no pins, whole-canvas stopping):
        the same computation as ``model.generate`` for one canvas.  Used by the
        prompt fallback's tests and the benchmark."""
        kv, _ = self.cache.encode(self._nonempty(prompt_ids), self.device)
        gen = self._generator(seed)
        canvas = uniform_noise((1, self.canvas), self.vocab, self.device, gen)
        state = None
        for state in self.denoise(kv, canvas, steps=steps, generator=gen, settings=settings):
            if bool(state.finished.all()):
                break
        return state.argmax[0].tolist()

    # -- helpers ---------------------------------------------------------------

    def _prompt_budget(self, request: InfillRequest) -> int:
        total = min(int(request.context_tokens or self.context_tokens), self.context_tokens)
        return max(total - self.canvas, 16)

    def _nonempty(self, ids: list[int]) -> list[int]:
        if ids:
            return ids
        fallback = _first(self.bos_id, self.eos_id, self.text_config.pad_token_id, 0)
        return [int(fallback)]

    def _generator(self, seed: int | None) -> torch.Generator:
        gen = torch.Generator(device=self.device)
        if seed is None:
            gen.seed()
        else:
            gen.manual_seed(int(seed))
        return gen

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    @staticmethod
    def _timings(t0: float, t1: float, t2: float, enc, *, rows: int, length: int,
                 prompt: int) -> dict[str, float]:
        """total/encode/denoise times, candidate rows, the chosen middle length,
        prompt tokens (encoder prefix + pinned suffix) and prompt-cache reuse."""
        t3 = time.perf_counter()
        out = {"total_ms": (t3 - t0) * 1000.0, "denoise_ms": (t2 - t1) * 1000.0, "rows": float(rows),
               "canvas_middle": float(length), "prompt_tokens": float(prompt)}
        if enc is not None:
            out.update(encode_ms=enc.ms, reused_tokens=float(enc.reused_tokens),
                       encoded_tokens=float(enc.encoded_tokens))
        return out


@dataclass
class _Snapshot:
    ids: list[list[int]]
    confidence: list[list[float]]
    score: torch.Tensor
    finished: torch.Tensor


def _snapshot(state: StepState, width: int, scored: torch.Tensor | None, span: torch.Tensor | None) -> _Snapshot:
    """Everything the host needs from one step, moved in one transfer."""
    if scored is not None:
        w = scored.to(state.pinned_logp.dtype)
        score = (state.pinned_logp * w).sum(-1) / w.sum(-1).clamp(min=1.0)
    elif span is not None:
        w = span.to(state.confidence.dtype)
        score = (state.confidence.clamp(min=1e-9).log() * w).sum(-1) / w.sum(-1).clamp(min=1.0)
    else:
        score = torch.zeros(state.argmax.shape[0], device=state.argmax.device)
    packed = torch.cat([state.argmax[:, :width].to(torch.float64), state.confidence[:, :width].double(),
                        score[:, None].double(), state.finished[:, None].double()], dim=1).cpu()
    ids = packed[:, :width].long().tolist()
    conf = packed[:, width:2 * width].tolist()
    return _Snapshot(ids=ids, confidence=conf, score=packed[:, 2 * width], finished=packed[:, 2 * width + 1] > 0)


def _first(*values):
    for v in values:
        if isinstance(v, (list, tuple)):
            v = v[0] if v else None
        if v is not None:
            return int(v)
    return None


def _stop_ids(tokenizer, text_config, generation_config) -> set[int]:
    ids: set[int] = set()
    for source in (getattr(tokenizer, "eos_token_id", None), getattr(tokenizer, "pad_token_id", None),
                   text_config.eos_token_id, text_config.pad_token_id,
                   getattr(generation_config, "eos_token_id", None) if generation_config else None):
        if source is None:
            continue
        ids.update(int(i) for i in (source if isinstance(source, (list, tuple)) else [source]))
    return ids


def load(path_or_id: str, *, device: str, dtype: str | None = None, allow_download: bool = False,
         context_tokens: int | None = None, progress: bool = False, mode: Mode | None = None,
         options: BlockOptions | None = None) -> BlockDiffusionBackend:
    """Load a DiffusionGemma checkpoint (local dir, or hub id from the local cache
    unless ``allow_download``) as a backend; see ``block_loading.load_block``."""
    from engine.backends.block_loading import load_block

    opts = options or BlockOptions()
    if mode is not None:
        opts.mode = mode
    return load_block(path_or_id, device=device, dtype=dtype, allow_download=allow_download,
                      context_tokens=context_tokens, progress=progress, options=opts)
