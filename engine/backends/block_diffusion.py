"""DiffusionGemma (block diffusion) behind the engine's backend protocol.

One request, top to bottom (``run``):

1. window the prompt (``block_window``) and get its encoder KV from the
   per-document cache, encoding only tokens not seen before (``block_cache``);
2. lay out one canvas row per middle-length candidate with the suffix pinned
   after the middle (``block_canvas``; lengths from ``block_length``), or, at
   the end of the file, one free row; in prompt mode, one free canvas after an
   instruction prompt (``block_prompt``);
3. denoise with the entropy-bound sampler (``block_sampler``), yielding a
   draft after every step; the host reads each step's small results
   asynchronously (``block_transfer``), so the device never waits for it;
4. rescore every finished middle with one clean decoder pass
   (``block_rescore``); a second round, on the steps early stopping saved,
   tries the lengths around the best one; return the best (``block_length``).

Loading a checkpoint into this backend: ``block_loading.load_block``.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field, replace
from typing import Literal

import torch

from engine.backends.block_cache import PromptCache, PromptKV, build_view, cache_kwarg
from engine.backends.block_canvas import build_layout, extract_middle, parses
from engine.backends.block_fixed import FixedShapeKV
from engine.backends.block_length import Hypothesis, choose, ladder, refine
from engine.backends.block_prompt import clean_answer, prompt_text
from engine.backends.block_rescore import rescore
from engine.backends.block_sampler import (
    Pins,
    SamplerSettings,
    SpanStopper,
    StepState,
    denoise_step,
    initial_state,
    uniform_noise,
)
from engine.backends.block_transfer import HostReader
from engine.backends.block_window import build_window, prefix_ids, suffix_ids
from engine.cancellation import CancellationToken
from engine.context_format import prompt_context
from engine.types import Draft, InfillRequest, InfillResult

Mode = Literal["pinned", "prompt"]
#: prompt tokens (before the canvas) when neither the user nor the model says otherwise
DEFAULT_PROMPT_TOKENS = 4096
MODEL_TYPE = "diffusion_gemma"


@dataclass
class BlockOptions:
    """Knobs that are not part of a request.

    ``mode``: "pinned" (suffix pinned in the canvas) or "prompt" (instruction
    prompt fallback).  ``max_candidates``: canvas rows per round (middle
    lengths tried at once).  ``length_rounds``: 2 lets a second round refine
    the length around the first round's best, 1 turns that off.
    ``fixed_shape``: pad the prompt KV to a bucket so the decoder step has the
    same shapes for every prompt in it (``block_fixed``); rounds then always
    have ``max_candidates`` rows.  ``compile``: torch.compile the step with
    CUDA graphs ("reduce-overhead") on CUDA; implies ``fixed_shape``.  Both off
    by default; the compiled path is unmeasured (no GPU was available when it
    was written).  ``host_depth``: steps the host may trail the device by when
    reading drafts (CUDA only, ``block_transfer``)."""

    mode: Mode = "pinned"
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    max_candidates: int = 4
    length_rounds: int = 2
    cache_entries: int = 4
    fixed_shape: bool = False
    compile: bool = False
    host_depth: int = 2


#: a refining round needs at least this many of the request's steps left
MIN_ROUND_STEPS = 2
#: the first round's lengths start here (a 1-token middle is rarely a fill)
LADDER_LOW = 2


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
        self.fill_id = _first(self.text_config.pad_token_id, self.eos_id, 0)
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
        head = self._context_ids(request)
        win = build_window(self.tokenizer, request.prefix, request.suffix, prompt_budget=budget - len(head),
                           canvas=self.canvas, bos_id=self.bos_id)
        at = 1 if self.bos_id is not None else 0  # other files after BOS, before the prefix
        win = replace(win, ids=win.ids[:at] + head + win.ids[at:])
        kv, enc = self.cache.encode(self._nonempty(win.ids), self.device, cancel)
        steps = int(request.steps or self.options.sampler.steps)
        top = max(1, min(int(request.max_new_tokens), self.canvas - 1))
        gen = self._generator(request.seed)
        # End of file: nothing after the cursor but blank lines.  Pinning
        # end-of-text after the middle would make the model finish the file
        # within the middle's length, so the row is left free (it stops where
        # the model writes an end token, or at ``top``).
        at_end = win.suffix_complete and not request.suffix.strip()
        known = [] if at_end else list(win.suffix_ids) + ([self.eos_id] if win.suffix_complete
                                                         and self.eos_id is not None else [])
        single = at_end or request.fixed_length
        rows = 1 if single else max(int(self.options.max_candidates), 1)
        lengths = [top] if single else ladder(top, rows, LADDER_LOW)
        t1 = time.perf_counter()
        hyps: dict[tuple[int, ...], Hypothesis] = {}
        tried: set[int] = set()
        used = executed = passes = denoised_rows = rounds = 0
        best: Hypothesis | None = None
        while True:
            rounds += 1
            tried.update(lengths)
            batch = self._rows(lengths, rows)
            denoised_rows += len(batch)
            fallback = best
            final = yield from self._denoise_round(kv, batch, known, win.suffix_ids, steps=steps, used=used,
                                                   generator=self._round_generator(gen, request.seed, rounds),
                                                   cancel=cancel, fallback=fallback)
            used += final.steps
            executed += final.executed
            new = self._hypotheses(final, batch, win.suffix_ids, request, hyps)
            if single:
                best = new[0]
                break
            if new:
                passes += 1
                scores, probs = rescore(lambda canvas: self._forward(kv, canvas), self._rows_of(new, rows),
                                        known, self.canvas, self.fill_id, self.device)
                for h, score, prob in zip(new, scores, probs):
                    hyps[h.ids] = replace(h, score=score, confidence=tuple(prob))
            best = choose(list(hyps.values()))
            if rounds >= self.options.length_rounds or steps - used < MIN_ROUND_STEPS:
                break
            lengths = refine(tried, max(len(best.ids), 1), rows, top)
            if not lengths:
                break
            yield Draft(step=used, steps=steps, text=best.text, confidence=list(best.confidence))
        t2 = time.perf_counter()
        conf = list(best.confidence)
        timings = self._timings(t0, t1, t2, enc, rows=denoised_rows, length=len(best.ids),
                                prompt=len(win.ids) + len(win.suffix_ids))
        timings.update(rounds=float(rounds), rescore_passes=float(passes), denoise_steps=float(used),
                       extra_steps=float(executed - used))
        result = InfillResult(middle=best.text, forwards=executed + passes, tokens=len(best.ids), confidence=conf,
                              timings=timings)
        yield Draft(step=used, steps=steps, text=best.text, confidence=conf, done=True)
        return result

    def _denoise_round(self, kv: PromptKV, lengths: list[int], known: list[int], suffix: list[int], *,
                       steps: int, used: int, generator: torch.Generator, cancel: CancellationToken,
                       fallback: Hypothesis | None):
        """Denoise one row per length with the ``steps - used`` steps left,
        yielding a draft per step (the best row so far, or ``fallback``, the
        best earlier hypothesis, when there is one); returns the final rows.

        The returned ``steps`` is the step at which every row had stopped (or
        the last step), ``executed`` the decoder passes actually run: reading
        the stop flags asynchronously may run a few passes more, which change
        nothing (stopped rows are frozen) and do not count against the budget,
        so the result does not depend on timing."""
        layout = build_layout(lengths, known, self.canvas, end_ids=[], device=self.device)
        canvas = layout.pins.apply_to_canvas(
            uniform_noise((len(lengths), self.canvas), self.vocab, self.device, generator))
        width = max(lengths)
        pins = layout.pins if known else None
        states = self.denoise(kv, canvas, steps=steps - used, pins=pins, span=layout.span, generator=generator,
                              cancel=cancel)
        state, count, stopped = yield from self._follow(
            states, width, layout.span,
            lambda step, snap: self._draft(snap, lengths, suffix, used + step, steps, fallback)
            if used + step < steps else None)
        final = _unpack(_pack(state, width, layout.span).cpu(), width, steps=stopped or count)
        final.executed = count
        return final

    def _follow(self, states: Iterator[StepState], width: int, span: torch.Tensor | None,
                make_draft: Callable[[int, _Snapshot], Draft | None]):
        """Run ``states`` (a ``denoise`` loop), reading each step's rows on the
        host as they arrive and yielding ``make_draft(step, rows)`` (unless
        None) until a step shows every row stopped.  Returns (last state, steps
        run, the step at which every row had stopped or None)."""
        reader = HostReader(self.device, self.options.host_depth)

        def read(arrived: list[tuple[int, torch.Tensor]]):
            for step, host in arrived:
                snap = _unpack(host, width)
                if bool(snap.finished.all()):
                    return step
                draft = make_draft(step, snap)
                if draft is not None:
                    yield draft
            return None

        state, count, stopped = None, 0, None
        for count, state in enumerate(states, start=1):
            reader.push(count, _pack(state, width, span))
            stopped = yield from read(reader.ready())
            if stopped is not None:
                break
        if stopped is None:
            stopped = yield from read(reader.drain())
        else:
            reader.drain()
        return state, count, stopped

    def _hypotheses(self, final: _Snapshot, lengths: list[int], suffix: list[int], request: InfillRequest,
                    seen: dict) -> list[Hypothesis]:
        """The finished rows as returned middles, minus those already scored."""
        out: dict[tuple[int, ...], Hypothesis] = {}
        for row, length in enumerate(lengths):
            ids = tuple(extract_middle(final.ids[row][:length], suffix, self.stop_ids))
            if ids in seen or ids in out:
                continue
            text = self._decode(list(ids))
            out[ids] = Hypothesis(ids=ids, text=text, row_length=length,
                                  confidence=tuple(final.confidence[row][: len(ids)]),
                                  syntax_ok=parses(request.language, request.prefix, text, request.suffix))
        return list(out.values())

    def _draft(self, snap: _Snapshot, lengths: list[int], suffix: list[int], step: int, steps: int,
               fallback: Hypothesis | None) -> Draft:
        if fallback is not None:
            return Draft(step=step, steps=steps, text=fallback.text, confidence=list(fallback.confidence))
        row = int(snap.score.argmax())
        ids = extract_middle(snap.ids[row][: lengths[row]], suffix, self.stop_ids)
        return Draft(step=step, steps=steps, text=self._decode(ids), confidence=snap.confidence[row][: len(ids)])

    def _round_generator(self, first: torch.Generator, seed: int | None, round_no: int) -> torch.Generator:
        """The first round draws from the request's generator (as ``generate``
        would); later rounds from their own, seeded from the request's seed, so
        that they do not depend on how many steps the first round ran."""
        if round_no == 1 or seed is None:
            return first
        return self._generator((int(seed) * 1_000_003 + round_no) % (1 << 63))

    def _rows(self, lengths: list[int], rows: int) -> list[int]:
        """In fixed-shape mode every round has ``rows`` rows (the last length
        repeated), so a compiled step never sees a new batch size."""
        lengths = list(lengths)
        if self.options.fixed_shape:
            lengths += [lengths[-1]] * (rows - len(lengths))
        return lengths

    def _rows_of(self, hyps: list[Hypothesis], rows: int) -> list[list[int]]:
        middles = [list(h.ids) for h in hyps]
        if self.options.fixed_shape:
            middles += [middles[-1]] * (rows - len(middles))
        return middles

    # -- prompt-only fallback ------------------------------------------------

    def _run_prompt(self, request: InfillRequest, cancel: CancellationToken, t0: float):
        context = self._context_text(request)
        budget = self._prompt_budget(request) - self._count(context)
        # most of the budget to the prefix, with the same chunked (cache-stable) left cut
        pre = prefix_ids(self.tokenizer, request.prefix, int(budget * 0.7), None)
        post, _ = suffix_ids(self.tokenizer, request.suffix, int(budget * 0.2))
        text = prompt_text(self.tokenizer, context + self._decode(pre), self._decode(post))
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if self.bos_id is not None and (not ids or ids[0] != self.bos_id):
            ids = [self.bos_id] + ids
        steps = int(request.steps or self.options.sampler.steps)
        gen = self._generator(request.seed)
        kv, enc = self.cache.encode(self._nonempty(ids), self.device, cancel)
        canvas = uniform_noise((1, self.canvas), self.vocab, self.device, gen)
        t1 = time.perf_counter()
        limit = min(int(request.max_new_tokens), self.canvas)
        states = self.denoise(kv, canvas, steps=steps, generator=gen, cancel=cancel)
        state, count, _ = yield from self._follow(states, limit, None,
                                                  lambda step, snap: self._prompt_draft(snap, step, steps))
        snap = _unpack(_pack(state, limit, None).cpu(), limit)
        t2 = time.perf_counter()
        out_ids = extract_middle(snap.ids[0], [], self.stop_ids)
        middle = clean_answer(self._decode(out_ids), request.suffix)
        conf = snap.confidence[0][: len(out_ids)]
        result = InfillResult(middle=middle, forwards=count, tokens=len(out_ids), confidence=conf,
                              timings=self._timings(t0, t1, t2, enc, rows=1, length=limit, prompt=len(ids)))
        yield Draft(step=count, steps=steps, text=middle, confidence=conf, done=True)
        return result

    def _prompt_draft(self, snap: _Snapshot, step: int, steps: int) -> Draft | None:
        if step >= steps:
            return None
        ids = extract_middle(snap.ids[0], [], self.stop_ids)
        return Draft(step=step, steps=steps, text=self._decode(ids), confidence=snap.confidence[0][: len(ids)])

    # -- the denoising loop ----------------------------------------------------

    @torch.no_grad()
    def denoise(self, kv: PromptKV, canvas: torch.Tensor, *, steps: int, pins: Pins | None = None,
                span: torch.Tensor | None = None, generator: torch.Generator | None = None,
                cancel: CancellationToken | None = None,
                settings: SamplerSettings | None = None) -> Iterator[StepState]:
        """Run up to ``steps`` decoder passes over ``canvas`` (B, C) after the
        prompt ``kv``; yields the device-side state after each.  The caller stops
        iterating when it has seen enough (all rows finished, or cancelled).

        Nothing here waits for the device: the caller reads what it needs
        through a ``HostReader``."""
        settings = replace(settings or self.options.sampler, steps=steps)
        view = self._view(kv, canvas.shape[0])
        stopper = SpanStopper(settings, span)
        sc_dtype = self.model.model.decoder.embed_tokens.weight.dtype
        state = initial_state(canvas)
        for cur_step in range(steps, 0, -1):
            if cancel is not None:
                cancel.raise_if_cancelled()
            logits = self._call_decoder(view, state.canvas, state.sc_logits)
            state = denoise_step(logits, state, cur_step=cur_step, steps=steps, settings=settings, pins=pins,
                                 stopper=stopper, generator=generator, sc_dtype=sc_dtype)
            yield state

    def _view(self, kv: PromptKV, batch: int) -> tuple:
        """(cache, masks, positions) for decoder passes over ``batch`` rows after ``kv``."""
        masks = None
        if self.options.fixed_shape:
            cache, masks = self._fixed.view(kv, batch, self.canvas, self.model.dtype)
        else:
            cache = build_view(kv, self.text_config, batch=batch)
        start = len(kv)
        positions = torch.arange(start, start + self.canvas, dtype=torch.int32, device=self.device).unsqueeze(0)
        return cache, masks, positions

    def _call_decoder(self, view: tuple, canvas: torch.Tensor, sc_logits: torch.Tensor | None) -> torch.Tensor:
        cache, masks, positions = view
        if self._decoder is not self.model:
            torch.compiler.cudagraph_mark_step_begin()  # the previous step's outputs are consumed
        return self._decoder(decoder_input_ids=canvas, self_conditioning_logits=sc_logits,
                             decoder_position_ids=positions, decoder_attention_mask=masks,
                             **{self._cache_kwarg: cache}).logits

    @torch.no_grad()
    def _forward(self, kv: PromptKV, canvas: torch.Tensor) -> torch.Tensor:
        """One clean decoder pass (no self-conditioning input) over ``canvas`` (H, C)."""
        return self._call_decoder(self._view(kv, canvas.shape[0]), canvas, None)

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
        assert state is not None, "denoise yields at least one step"
        return state.argmax[0].tolist()

    # -- helpers ---------------------------------------------------------------

    def _count(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0

    def _context_text(self, request: InfillRequest) -> str:
        """Other files' pieces with file-path headers (``engine.context_format``),
        within the share of the window that leaves the cursor's file its room."""
        return prompt_context(request, self._count, self._prompt_budget(request) + self.canvas, self.canvas)

    def _context_ids(self, request: InfillRequest) -> list[int]:
        text = self._context_text(request)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

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
    """One step's rows on the host: tokens and confidences of the first
    ``width`` positions, the draft score and the stop flag of each row."""

    ids: list[list[int]]
    confidence: list[list[float]]
    score: torch.Tensor
    finished: torch.Tensor
    steps: int = 0
    executed: int = 0


def _pack(state: StepState, width: int, span: torch.Tensor | None) -> torch.Tensor:
    """Everything the host needs from one step as one (B, 2 * width + 2)
    tensor, so it moves in one transfer.  The draft score (which row a draft
    shows) is the row's mean log-confidence over its middle."""
    if span is not None:
        w = span.to(state.confidence.dtype)
        score = (state.confidence.clamp(min=1e-9).log() * w).sum(-1) / w.sum(-1).clamp(min=1.0)
    else:
        score = torch.zeros(state.argmax.shape[0], device=state.argmax.device)
    return torch.cat([state.argmax[:, :width].to(torch.float64), state.confidence[:, :width].double(),
                      score[:, None].double(), state.finished[:, None].double()], dim=1)


def _unpack(packed: torch.Tensor, width: int, steps: int = 0) -> _Snapshot:
    ids = packed[:, :width].long().tolist()
    conf = packed[:, width:2 * width].tolist()
    return _Snapshot(ids=ids, confidence=conf, score=packed[:, 2 * width], finished=packed[:, 2 * width + 1] > 0,
                     steps=steps)


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

