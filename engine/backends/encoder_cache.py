"""Denoising steps that recompute only the canvas: ModernBERT with the context's
keys and values kept between steps.

Why: on the 2-core CPU one forward over the bundled model's 384-token window
costs about 190 ms, and the unknown-length sampler runs one forward per
committed token.  Between two steps only the canvas changes, so the prefix
and suffix positions (nine tenths of the window) are recomputed for nothing.
As in Fast-dLLM's dual cache (arXiv 2505.22618), the first forward keeps every
layer's keys and values; later steps run the layers on the canvas positions
(plus ``margin`` neighbours on each side) only, attending to the kept keys and
values of everything else.  It is an approximation: in a bidirectional model
the context's states depend on the canvas, which changes; ``refresh`` runs a
full forward again every that many steps.  docs/BENCHMARKS.md measures what it
costs in quality and gains in time.

This mirrors ``transformers``' ModernBERT forward (pre-norm layers, rotary
positions per layer type, bidirectional sliding-window layers) using the
model's own modules, so the weights, and any quantized ``Linear``, are the
model's; ``tests/test_encoder_cache.py`` checks the full forward against
``transformers`` to float tolerance.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from engine.cancellation import CancellationToken


def supports(model) -> bool:
    """Whether ``model`` is a ModernBERT masked LM this module can step."""
    config = getattr(model, "config", None)
    return (getattr(config, "model_type", None) == "modernbert"
            and all(hasattr(model, a) for a in ("model", "head", "decoder")))


@dataclass
class Kept:
    """One layer's keys and values for every position, (1, heads, L, head_dim).

    ``raw_keys``, kept only where a later request may start from them
    (``engine.backends.keystroke_reuse``), are the keys before their rotary
    rotation: rotated for other positions they give exactly what a fresh forward
    computes from the same states, in any dtype (rotating the rotated keys once
    more rounds twice, a bf16 step off)."""

    keys: torch.Tensor
    values: torch.Tensor
    raw_keys: torch.Tensor | None = None


class CanvasStepper:
    """Forward passes for one request's layout whose context part is reused.

    ``full(ids)`` runs every position and keeps the keys and values;
    ``step(ids, lo, hi)`` runs positions ``lo:hi`` only and returns their logits.
    ``valid`` is the number of real (unpadded) positions: keys past it are masked.
    ``cancel`` is checked before every layer, so a cancelled request stops
    within a layer's time, not a whole forward's; ``keep=False`` keeps nothing
    (every step a full forward); ``keep_raw_keys`` also keeps the keys before
    their rotation (``Kept.raw_keys``), for a later request to start from.
    """

    def __init__(self, model, length: int, valid: int, cancel: CancellationToken | None = None,
                 keep: bool = True, keep_raw_keys: bool = False) -> None:
        self.model = model
        self.cancel = cancel
        self.keep = keep
        self.keep_raw_keys = keep and keep_raw_keys
        self.encoder = model.model
        self.config = model.config
        self.length = length
        self.valid = valid
        self.kept: list[Kept] = []
        self.half_window = int(self.config.local_attention) // 2
        self.heads = int(self.config.num_attention_heads)
        self.head_dim = int(self.config.hidden_size) // self.heads
        positions = torch.arange(length, device=self._device())
        #: per layer kind: cos and "signed sin" tables (1, 1, L, head_dim), see _rotate
        self._rotary: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for kind in set(self.config.layer_types):
            cos, sin = self.encoder.rotary_emb(self._probe(), positions[None], kind)
            half = sin.shape[-1] // 2
            self._rotary[kind] = (cos[:, None], torch.cat((-sin[..., :half], sin[..., half:]), dim=-1)[:, None])
        #: per layer kind: the attention mask of every position, (1, 1, L, L), made on first use
        self._masks: dict[str, torch.Tensor] = {}

    def rotated_keys(self, raw_keys: torch.Tensor, positions: torch.Tensor, kind: str) -> torch.Tensor:
        """Keys before rotation ``raw_keys`` (1, heads, n, head_dim) of a ``kind`` layer
        rotated for ``positions`` (n,) of this layout: the forward's own rotation, so the
        same raw keys give the same keys bit for bit."""
        cos, sin = self._rotary[kind]
        return _rotate(raw_keys, cos[:, :, positions], sin[:, :, positions])

    def _device(self) -> torch.device:
        return self.encoder.embeddings.tok_embeddings.weight.device

    def _probe(self) -> torch.Tensor:
        """A tensor of the model's dtype (the rotary tables take it)."""
        return self.encoder.embeddings.tok_embeddings.weight[:1]

    def _mask(self, kind: str) -> torch.Tensor:
        """Boolean (1, 1, L, L) attention mask: padding never, and sliding
        layers only within ``half_window`` positions (as transformers' mask)."""
        mask = self._masks.get(kind)
        if mask is None:
            keys = torch.arange(self.length, device=self._device())
            allowed = (keys < self.valid)[None, :].expand(self.length, -1)
            if kind == "sliding_attention":
                allowed = allowed & ((keys[:, None] - keys[None, :]).abs() <= self.half_window)
            mask = self._masks[kind] = allowed[None, None]
        return mask

    @torch.inference_mode()
    def full(self, input_ids: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Logits (1, stop-start, vocab) of a forward over every position; keeps
        each layer's keys and values for later ``step`` calls."""
        self.kept = []
        positions = torch.arange(self.length, device=input_ids.device)
        hidden = self._run(input_ids, positions, keep=self.keep)
        return self._logits(hidden[:, start:stop])

    @torch.inference_mode()
    def step(self, input_ids: torch.Tensor, lo: int, hi: int, start: int, stop: int) -> torch.Tensor:
        """Logits (1, stop-start, vocab) with only positions ``lo:hi`` (which hold
        ``start:stop``) recomputed; their keys and values replace the kept ones."""
        positions = torch.arange(lo, hi, device=input_ids.device)
        return self.step_at(input_ids, positions)[:, start - lo:stop - lo]

    @torch.inference_mode()
    def step_at(self, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Logits (1, len(positions), vocab) with only ``positions`` (ascending,
        possibly several stretches) recomputed; their keys and values replace the kept ones."""
        if not self.kept:
            raise RuntimeError("step before full: nothing kept")
        return self._logits(self._run(input_ids[:, positions], positions, keep=False))

    @torch.inference_mode()
    def step_branches(self, input_ids: torch.Tensor, lo: int, hi: int, start: int, stop: int) -> torch.Tensor:
        """Logits (B, stop-start, vocab) of ``B`` layouts that differ only within ``lo:hi``
        (alternative canvases, ``engine.branching``), in one batched pass: each recomputes
        ``lo:hi`` and attends to the kept keys and values elsewhere, which stay as they are."""
        if not self.kept:
            raise RuntimeError("step before full: nothing kept")
        positions = torch.arange(lo, hi, device=input_ids.device)
        hidden = self._run(input_ids[:, positions], positions, keep=False, shared=True)
        return self._logits(hidden[:, start - lo:stop - lo])

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The masked-LM head.  A float decoder runs as ``weight @ hidden.T``: with
        a few rows and an 8k vocabulary that reads the weight about twice as fast
        on the CPU as ``F.linear`` does (measured: 1.8 vs 3.7 ms for 8 rows)."""
        hidden = self.model.head(hidden)
        decoder = self.model.decoder
        if type(decoder) is not torch.nn.Linear:  # e.g. a quantized head
            return decoder(hidden)
        batch, rows, width = hidden.shape
        logits = (decoder.weight @ hidden.reshape(batch * rows, width).T).T.reshape(batch, rows, -1)
        return logits if decoder.bias is None else logits + decoder.bias

    def _run(self, ids: torch.Tensor, positions: torch.Tensor, *, keep: bool, shared: bool = False) -> torch.Tensor:
        """Hidden states of ``positions`` for each row of ``ids`` (B, len(positions)):
        ``keep`` keeps every layer's keys and values (a full forward); else the kept
        ones are updated at ``positions``, or with ``shared`` only read (each row sees
        its own keys and values at ``positions`` and the kept ones elsewhere)."""
        hidden = self.encoder.embeddings(input_ids=ids)
        rows = _rows(positions)
        # per layer kind, once per forward (not per layer): rotary tables and mask rows of these positions
        tables = {kind: (cos[:, :, rows], sin[:, :, rows], self._mask(kind)[:, :, rows])
                  for kind, (cos, sin) in self._rotary.items()}
        for index, layer in enumerate(self.encoder.layers):
            if self.cancel is not None:  # a forward is tens of ms on a CPU: stop between layers
                self.cancel.raise_if_cancelled()
            kind = layer.attention_type
            cos, sin, mask = tables[kind]
            attention = self._attend(layer, layer.attn_norm(hidden), index, positions, cos, sin,
                                     _Attention(kind, rows, mask), keep, shared)
            hidden = hidden + attention
            hidden = hidden + layer.mlp(layer.mlp_norm(hidden))
        return self.encoder.final_norm(hidden)

    def _attend(self, layer, x: torch.Tensor, index: int, positions: torch.Tensor, cos: torch.Tensor,
                sin: torch.Tensor, how: _Attention, keep: bool, shared: bool = False) -> torch.Tensor:
        attn = layer.attn
        batch, n = x.shape[0], positions.numel()
        # (3, B, heads, n, head_dim) views: queries and keys are rotated together
        qkv = attn.Wqkv(x).view(batch, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = _rotate(qkv[:2], cos, sin).unbind(0)
        v = qkv[2]
        if keep:
            self.kept.append(Kept(k, v.contiguous(), qkv[1].contiguous() if self.keep_raw_keys else None))
            keys, values = k, v
        elif not self.kept:  # a plain full forward (nothing kept)
            keys, values = k, v
        elif shared:  # each row: its own states at ``positions``, the kept ones elsewhere
            kept = self.kept[index]
            keys = kept.keys.expand(batch, -1, -1, -1).clone()
            values = kept.values.expand(batch, -1, -1, -1).clone()
            keys[:, :, positions] = k
            values[:, :, positions] = v
        else:
            kept = self.kept[index]
            kept.keys[:, :, positions] = k
            kept.values[:, :, positions] = v
            if kept.raw_keys is not None:
                kept.raw_keys[:, :, positions] = qkv[1]
            keys, values = kept.keys, kept.values
        out = self._attention(q, keys, values, how)
        return attn.Wo(out.transpose(1, 2).reshape(batch, n, -1))

    def _attention(self, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, how: _Attention) -> torch.Tensor:
        """Scaled dot-product attention of ``q`` over the keys its mask allows.

        Why not one masked call: on the CPU a boolean mask makes the kernel about twice
        as slow as none, and a sliding layer's mask allows only ``half_window`` keys on
        each side.  So a full layer without padding runs unmasked, and a sliding layer
        runs its queries in chunks over the keys within their reach (the same keys,
        the same mask entries: the outputs are the masked call's to float rounding)."""
        scale = self.head_dim ** -0.5
        if how.kind == "sliding_attention" and isinstance(how.rows, slice):
            first, n, outs = how.rows.start, q.shape[2], []
            for lo in range(0, n, _QUERY_CHUNK):
                hi = min(n, lo + _QUERY_CHUNK)
                a, b = max(0, first + lo - self.half_window), min(self.length, first + hi + self.half_window)
                outs.append(F.scaled_dot_product_attention(
                    q[:, :, lo:hi], keys[:, :, a:b], values[:, :, a:b], attn_mask=how.mask[:, :, lo:hi, a:b],
                    scale=scale))
            return outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)
        if how.kind != "sliding_attention" and self.valid == self.length:
            return F.scaled_dot_product_attention(q, keys, values, scale=scale)  # nothing to mask
        return F.scaled_dot_product_attention(q, keys, values, attn_mask=how.mask, scale=scale)


#: queries per chunk of a sliding layer's attention (128: fastest of 32/64/128 on the 2-core CPU)
_QUERY_CHUNK = 128


@dataclass(frozen=True)
class _Attention:
    """Which keys one layer's queries may attend to: the layer kind, the query
    rows (a slice when they are one stretch) and their rows of the mask."""

    kind: str
    rows: slice | torch.Tensor
    mask: torch.Tensor


def _rows(positions: torch.Tensor) -> slice | torch.Tensor:
    """``positions`` as a slice where they are one stretch (a view, no copy), else as they are."""
    first, last = int(positions[0]), int(positions[-1])
    return slice(first, last + 1) if last - first + 1 == positions.numel() else positions


def _rotate(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """Rotary positions: ``x * cos + rotate_half(x) * sin`` (transformers' form), with
    the sign of ``rotate_half`` folded into ``signed_sin`` (the first half negated), so
    that it is one concatenation and no negation per layer."""
    half = x.shape[-1] // 2
    return x * cos + torch.cat((x[..., half:], x[..., :half]), dim=-1) * signed_sin
