"""Clean rescoring of finished middles: one decoder pass, no noise.

While a canvas is being denoised, every position that has not been accepted
holds a fresh random token, and rows stop at different steps; a score read off
the last step therefore measures the noise as much as the middle.  Here each
hypothesis is laid out again exactly as it would be returned::

    [ middle (m tokens, after cutting) | suffix + end (pinned) | fill ]

and the decoder sees it with nothing random in it and no self-conditioning
input (the first-step condition).  DiffusionGemma is trained to put back the
clean token at every position, so its probability of the token that *is* there
says how well that token fits both sides; a wrong length leaves a seam (a
middle that stops short of the suffix, or tokens that have nothing left to
say) that shows up as improbable tokens.  The score is the mean log-probability
over the middle and the first ``SCORED_PINS`` known tokens after it, the same
rule for every length, so candidates of different lengths compare fairly.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

#: known tokens after the middle that count in its score (the seam and what
#: follows it say most; the rest of a long suffix would dilute the difference)
SCORED_PINS = 24

Forward = Callable[[torch.Tensor], torch.Tensor]  # clean canvas (H, C) -> logits (H, C, V)


def clean_canvases(middles: list[list[int]], known: list[int], canvas: int, fill: int,
                   device) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens, scored) for ``middles``, both (H, C): the laid-out canvases and
    the positions that count in the score."""
    h = len(middles)
    tokens = torch.full((h, canvas), int(fill), dtype=torch.long)
    scored = torch.zeros(h, canvas, dtype=torch.bool)
    for row, ids in enumerate(middles):
        m = len(ids)
        tail = list(known[: max(canvas - m, 0)])
        row_ids = list(ids) + tail
        if row_ids:
            tokens[row, : len(row_ids)] = torch.tensor(row_ids, dtype=torch.long)
        scored[row, : m + min(len(tail), SCORED_PINS)] = True
    return tokens.to(device), scored.to(device)


@torch.no_grad()
def rescore(forward: Forward, middles: list[list[int]], known: list[int], canvas: int, fill: int,
            device) -> tuple[list[float], list[list[float]]]:
    """(score per middle, per-token probability of each middle's tokens), from
    one decoder pass over the clean canvases (one row per middle)."""
    tokens, scored = clean_canvases(middles, known, canvas, fill, device)
    logits = forward(tokens).float()
    logp = logits.log_softmax(dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    w = scored.to(logp.dtype)
    scores = (logp * w).sum(-1) / w.sum(-1).clamp(min=1.0)
    packed = torch.cat([scores[:, None], logp.exp()], dim=1).cpu()  # one transfer
    out_scores = packed[:, 0].tolist()
    probs = [packed[row, 1:1 + len(ids)].tolist() for row, ids in enumerate(middles)]
    return out_scores, probs
