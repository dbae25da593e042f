"""Parity of the DiffusionGemma backend's denoising loop with transformers' ``generate``.

``generate`` is the reference implementation of DiffusionGemma's sampler.
With the same seed, steps and settings our loop must give the same tokens:
unpinned with whole-canvas stopping (what ``generate`` does), on the plain and
the fixed-shape (compilable) KV view, with batched rows that stop at different
steps, with the suffix pinned through a LogitsProcessor, and with stopping
judged on the middle only (which ``generate`` cannot do: there the reference
is ``generate`` run without stopping, each row read at the step where the
stopping rule, recomputed from ``generate``'s own scores, says it stops).
"""
from __future__ import annotations

import pytest
import torch
from block_tiny import CANVAS, PREFIX, SETTINGS, SUFFIX, backend, fresh, model_dir  # noqa: F401 - fixtures

from engine.backends.block_canvas import build_layout
from engine.backends.block_sampler import SamplerSettings, temperature, token_entropy

#: many seeds and step counts against generate (minutes on a loaded CPU): left out of the quick loop
pytestmark = pytest.mark.slow


def _generate(model, prompt: list[int], rows: int, steps: int, seed: int, settings: SamplerSettings):
    from transformers.models.diffusion_gemma.generation_diffusion_gemma import EntropyBoundSamplerConfig

    torch.manual_seed(seed)
    out = model.generate(
        torch.tensor([prompt] * rows), max_new_tokens=CANVAS, max_denoising_steps=steps,
        sampler_config=EntropyBoundSamplerConfig(entropy_bound=settings.entropy_bound),
        t_min=settings.t_min, t_max=settings.t_max, stability_threshold=settings.stability_threshold,
        confidence_threshold=settings.confidence_threshold, eos_token_id=None, pad_token_id=None)
    return out.sequences[:, len(prompt):]


#: with this threshold rows of the tiny model stop early and at different steps
#: (their mean entropy falls as the temperature does): exercises adaptive stopping
EARLY_STOP = SamplerSettings(steps=12, stability_threshold=0, confidence_threshold=1.3)


@pytest.mark.parametrize("settings", [SETTINGS, EARLY_STOP], ids=["default-stop", "early-stop"])
@pytest.mark.parametrize("steps", [1, 4, 12])
@pytest.mark.parametrize("seed", [0, 2, 5, 9])
def test_unpinned_output_matches_generate(fresh, seed, steps, settings):
    """No pins, whole-canvas stopping, same seed and steps: same tokens as ``generate``."""
    prompt = [fresh.bos_id] + fresh.tokenizer("x = [1, 2, 3]\nfor i in x:\n", add_special_tokens=False)["input_ids"]
    ours = fresh.generate_ids(prompt, steps=steps, seed=seed, settings=settings)
    assert ours == _generate(fresh.model, prompt, 1, steps, seed, settings)[0].tolist()


@pytest.mark.parametrize("settings", [SETTINGS, EARLY_STOP], ids=["default-stop", "early-stop"])
@pytest.mark.parametrize("seed", [0, 5])
def test_fixed_shape_view_matches_generate(fresh, seed, settings):
    """The padded, masked prompt KV of the compilable path gives ``generate``'s tokens too."""
    prompt = [fresh.bos_id] + fresh.tokenizer("x = [1, 2, 3]\nfor i in x:\n", add_special_tokens=False)["input_ids"]
    fresh.options.fixed_shape = True
    try:
        ours = fresh.generate_ids(prompt, steps=12, seed=seed, settings=settings)
    finally:
        fresh.options.fixed_shape = False
    assert ours == _generate(fresh.model, prompt, 1, 12, seed, settings)[0].tolist()


def test_batched_rows_match_generate_with_early_stops(fresh):
    """Three rows that stop at different steps: finished rows are frozen as in ``generate``."""
    from engine.backends.block_sampler import uniform_noise

    prompt = [fresh.bos_id] + fresh.tokenizer("import os\n", add_special_tokens=False)["input_ids"]
    kv, _ = fresh.cache.encode(prompt, "cpu")
    for seed in range(8):  # the first seed whose rows stop at different steps
        gen = torch.Generator().manual_seed(seed)
        canvas = uniform_noise((3, CANVAS), fresh.vocab, "cpu", gen)
        seen = []
        for state in fresh.denoise(kv, canvas, steps=12, generator=gen, settings=EARLY_STOP):
            seen.append(int(state.finished.sum()))
            if bool(state.finished.all()):
                break
        if any(0 < n < 3 for n in seen):
            break
    assert any(0 < n < 3 for n in seen), "rows should stop at different steps"
    assert torch.equal(state.argmax, _generate(fresh.model, prompt, 3, 12, seed, EARLY_STOP))


@pytest.mark.parametrize("seed,steps", [(9, 6), (1, 3), (4, 12)])
def test_pinned_denoise_matches_generate_with_the_pin_logits_processor(fresh, seed, steps):
    """Pinning = a LogitsProcessor over (batch, canvas, vocab) scores + a seeded first
    canvas: with whole-canvas stopping our loop and ``generate`` agree token for token."""
    from transformers.generation import LogitsProcessorList
    from transformers.models.diffusion_gemma.generation_diffusion_gemma import EntropyBoundSamplerConfig

    from engine.backends.block_sampler import PinnedTokensLogitsProcessor, uniform_noise
    from engine.backends.block_window import build_window

    win = build_window(fresh.tokenizer, PREFIX, SUFFIX, prompt_budget=256, canvas=CANVAS, bos_id=fresh.bos_id)
    layout = build_layout([4, 8], win.suffix_ids, CANVAS, end_ids=[fresh.eos_id], device="cpu")
    kv, _ = fresh.cache.encode(win.ids, "cpu")
    gen = torch.Generator().manual_seed(seed)
    canvas = layout.pins.apply_to_canvas(uniform_noise((2, CANVAS), fresh.vocab, "cpu", gen))
    *_, state = fresh.denoise(kv, canvas, steps=steps, pins=layout.pins, generator=gen, settings=SETTINGS)  # the last

    torch.manual_seed(seed)
    first = layout.pins.apply_to_canvas(torch.randint(0, fresh.vocab, (2, CANVAS)))
    torch.manual_seed(seed)
    out = fresh.model.generate(
        torch.tensor([win.ids] * 2), decoder_input_ids=first, max_new_tokens=CANVAS, max_denoising_steps=steps,
        logits_processor=LogitsProcessorList([PinnedTokensLogitsProcessor(layout.pins)]),
        sampler_config=EntropyBoundSamplerConfig(entropy_bound=SETTINGS.entropy_bound),
        t_min=SETTINGS.t_min, t_max=SETTINGS.t_max, stability_threshold=SETTINGS.stability_threshold,
        confidence_threshold=SETTINGS.confidence_threshold, eos_token_id=None, pad_token_id=None)
    assert torch.equal(state.argmax, out.sequences[:, len(win.ids):])
    assert torch.equal(state.argmax[layout.pins.mask], layout.pins.tokens[layout.pins.mask])


class _Recorder:
    """A LogitsProcessor that keeps the (pinned, untempered) scores ``generate``
    samples from at each step."""

    def __init__(self) -> None:
        self.scores: list[tuple[int, torch.Tensor]] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, cur_step=None) -> torch.Tensor:
        self.scores.append((int(cur_step), scores.detach().clone()))
        return scores


#: settings under which the middles of the tiny model's rows stop at different
#: steps: on entropy alone, and with the stability rule too (rarer, it stops row 0 for some seeds)
MIDDLE_STOPS = [SamplerSettings(steps=12, stability_threshold=0, confidence_threshold=0.8),
                SamplerSettings(steps=12, stability_threshold=1, confidence_threshold=2.5)]


def _reference_stops(recorded: list[tuple[int, torch.Tensor]], lengths: list[int], settings: SamplerSettings,
                     steps: int) -> list[int | None]:
    """The middle-only stopping rule, recomputed from ``generate``'s scores: a
    row stops at the first step whose middle argmax equals that of each of the
    ``stability_threshold`` steps before and whose mean middle entropy
    (tempered scores) is below the threshold."""
    argmax = [scores.argmax(-1) for _, scores in recorded]
    k = settings.stability_threshold
    out: list[int | None] = []
    for row, length in enumerate(lengths):
        stop = None
        for i, (cur_step, scores) in enumerate(recorded):
            entropy = token_entropy(scores[row] / temperature(cur_step, steps, settings))[:length].mean()
            stable = i >= k and all(torch.equal(argmax[i][row, :length], argmax[i - j][row, :length])
                                    for j in range(1, k + 1))
            if stable and float(entropy) < settings.confidence_threshold:
                stop = i + 1
                break
        out.append(stop)
    return out


@pytest.mark.parametrize("settings", MIDDLE_STOPS, ids=["entropy", "entropy+stability"])
@pytest.mark.parametrize("seed", [0, 3, 7])
def test_middle_only_stopping_matches_generate_read_at_each_rows_stop(fresh, seed, settings):
    """Rows judged on their middles stop at different steps; each row's answer
    is ``generate``'s argmax at the step where the rule says that row stops."""
    from transformers.generation import LogitsProcessorList
    from transformers.models.diffusion_gemma.generation_diffusion_gemma import EntropyBoundSamplerConfig

    from engine.backends.block_sampler import PinnedTokensLogitsProcessor, uniform_noise
    from engine.backends.block_window import build_window

    steps, lengths = 12, [4, 8, 16]
    win = build_window(fresh.tokenizer, PREFIX, SUFFIX, prompt_budget=256, canvas=CANVAS, bos_id=fresh.bos_id)
    layout = build_layout(lengths, win.suffix_ids, CANVAS, end_ids=[fresh.eos_id], device="cpu")
    kv, _ = fresh.cache.encode(win.ids, "cpu")
    gen = torch.Generator().manual_seed(seed)
    canvas = layout.pins.apply_to_canvas(uniform_noise((3, CANVAS), fresh.vocab, "cpu", gen))
    stops: list[int | None] = [None] * 3
    ran = 0
    for ran, state in enumerate(fresh.denoise(kv, canvas, steps=steps, pins=layout.pins, span=layout.span,
                                              generator=gen, settings=settings), start=1):
        stops = [s if s is not None or not bool(done) else ran for s, done in zip(stops, state.finished)]
        if bool(state.finished.all()):
            break

    recorder = _Recorder()
    torch.manual_seed(seed)
    first = layout.pins.apply_to_canvas(torch.randint(0, fresh.vocab, (3, CANVAS)))
    torch.manual_seed(seed)
    fresh.model.generate(  # stopping off: the history is longer than the run, so never "stable"
        torch.tensor([win.ids] * 3), decoder_input_ids=first, max_new_tokens=CANVAS, max_denoising_steps=steps,
        logits_processor=LogitsProcessorList([PinnedTokensLogitsProcessor(layout.pins), recorder]),
        sampler_config=EntropyBoundSamplerConfig(entropy_bound=settings.entropy_bound),
        t_min=settings.t_min, t_max=settings.t_max, stability_threshold=steps + 1,
        confidence_threshold=settings.confidence_threshold, eos_token_id=None, pad_token_id=None)
    assert len(recorder.scores) == steps

    if settings.stability_threshold == 0:
        assert len(set(stops)) > 1, "rows should stop at different steps"
    assert stops == _reference_stops(recorder.scores, lengths, settings, steps)
    for row, stop in enumerate(stops):
        at = (stop or ran) - 1
        assert torch.equal(state.argmax[row], recorder.scores[at][1][row].argmax(-1)), f"row {row}"
