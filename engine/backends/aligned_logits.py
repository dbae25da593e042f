"""Put a shifted-logits network's predictions where the masked backend expects them.

Dream-style models (Dream, Dream-Coder, DiffuCoder, DreamOn, Open-dCoder) were
adapted from autoregressive checkpoints and keep their habit: the logits at
position i are the model's prediction for token i+1.  Their own samplers
shift once per forward (``cat([logits[:, :1], logits[:, :-1]], 1)``: position
0 reuses its own logits).  Doing the same shift here, in one place, lets every
sampler in ``engine`` read "logits at i = prediction for i" for every family.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class AlignedOutput:
    logits: torch.Tensor  # (batch, length, vocab): prediction for each position


class AlignedLogits(nn.Module):
    """Wraps a transformers LM whose logits are shifted by one position."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network
        self.config = network.config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> AlignedOutput:
        kwargs = {} if attention_mask is None else {"attention_mask": attention_mask}
        raw = self.network(input_ids=input_ids, **kwargs).logits
        return AlignedOutput(logits=torch.cat([raw[:, :1], raw[:, :-1]], dim=1))
