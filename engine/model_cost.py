"""What one forward pass of a catalog model costs: matrix products, FLOPs, bytes.

Why a module of its own: ``engine.model_speed`` turns these costs into times
with a measured probe of the machine (``engine.speed_probe``), and the catalog's
architecture figures are checked here against its parameter counts
(``tests/test_model_speed.py``), so a wrong layer count or width shows.

Everything is arithmetic on the catalog's ``architecture`` block (the model's
own config.json values, with their source); nothing here imports torch.  A
forward over ``rows`` positions that attend to ``keys`` positions is, per layer,
the query/key/value/output projections, the MLP (gated: three matrices of
hidden x intermediate; a mixture of experts adds the active experts'), the
attention's two batched products, and per forward the LM head over
``head_rows`` positions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.errors import ModelNotFoundError


@dataclass(frozen=True)
class Architecture:
    """The shapes that decide a forward's cost (a model's config.json, in the catalog)."""

    layers: int
    hidden: int
    intermediate: int  # the dense MLP's width (0: none)
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied_embeddings: bool
    #: prompt window in tokens the engine uses when the user sets none (engine defaults per family)
    default_window: int
    #: "all": the LM head runs over every position (transformers' CausalLM forward, as the native
    #: families run); "canvas": over the canvas only (the bundled ModernBERT's split head)
    logits: str = "all"
    #: extra matrices per layer in the MLP besides the gated three (ModernBERT's head: none)
    experts: int = 0
    experts_active: int = 0
    expert_intermediate: int = 0
    #: extra weights not in the layers or the embeddings (e.g. ModernBERT's head), in parameters
    extra_params: int = 0

    @property
    def q_width(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_width(self) -> int:
        return self.kv_heads * self.head_dim

    def layer_params(self) -> int:
        """Weights of one layer (projections and MLPs; norms and biases are negligible)."""
        h = self.hidden
        attention = 2 * h * self.q_width + 2 * h * self.kv_width
        dense = 3 * h * self.intermediate
        experts = self.experts * 3 * h * self.expert_intermediate
        return attention + dense + experts

    def embedding_params(self) -> int:
        return self.vocab * self.hidden * (1 if self.tied_embeddings else 2)

    def params(self) -> int:
        return self.layers * self.layer_params() + self.embedding_params() + self.extra_params


def architecture(raw: dict[str, Any] | None, name: str) -> Architecture | None:
    """The catalog entry's ``architecture`` block as an ``Architecture`` (None: the entry has none)."""
    if raw is None:
        return None
    try:
        return Architecture(
            layers=int(raw["layers"]), hidden=int(raw["hidden"]), intermediate=int(raw["intermediate"]),
            heads=int(raw["heads"]), kv_heads=int(raw.get("kv_heads") or raw["heads"]),
            head_dim=int(raw.get("head_dim") or int(raw["hidden"]) // int(raw["heads"])),
            vocab=int(raw["vocab"]), tied_embeddings=bool(raw.get("tied_embeddings", False)),
            default_window=int(raw["default_window"]), logits=str(raw.get("logits", "all")),
            experts=int(raw.get("experts") or 0), experts_active=int(raw.get("experts_active") or 0),
            expert_intermediate=int(raw.get("expert_intermediate") or 0),
            extra_params=int(raw.get("extra_params") or 0),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelNotFoundError(f"catalog entry {name!r}: bad architecture ({exc})") from None


@dataclass(frozen=True)
class Product:
    """``count`` matrix products of (m x k) by (k x n), with ``weight_bytes`` of weights read once each."""

    m: int
    k: int
    n: int
    count: int = 1
    #: bytes of the (k x n) operand that come from memory (the weights); activations are not counted
    weight_bytes: float = 0.0

    @property
    def flops(self) -> float:
        return 2.0 * self.m * self.k * self.n * self.count


@dataclass(frozen=True)
class ForwardCost:
    """One forward pass as products (what a probe's rates time) and its totals."""

    products: tuple[Product, ...]
    #: FLOPs of the attention's batched products (scores and weighted values)
    attention_flops: float
    #: bytes of activations written and read between the products (norms, activations, residuals)
    activation_bytes: float
    #: the attention's head width (its rate depends on it)
    head_dim: int = 64

    @property
    def flops(self) -> float:
        return sum(p.flops for p in self.products) + self.attention_flops

    @property
    def weight_bytes(self) -> float:
        return sum(p.weight_bytes for p in self.products)


#: activation values written and read per position per layer, counted from the operations between the
#: products: the two norms (about 5 passes over ``hidden`` each, dtype conversions included) and the
#: two residual adds (2 each); the rotary on queries and keys (about 6 passes over their width); the
#: MLP's activation and product (about 5 passes over ``intermediate``)
PASSES_HIDDEN = 14
PASSES_QK = 6
PASSES_INTERMEDIATE = 5
#: passes over the logits a forward writes (the head's output, the realignment's copy, the slice)
PASSES_LOGITS = 3


def forward_cost(arch: Architecture, rows: int, keys: int, head_rows: int, weight_bytes_per: float,
                 activation_bytes_per: float) -> ForwardCost:
    """The cost of one forward computing ``rows`` positions that attend to ``keys`` positions,
    with the LM head over ``head_rows`` of them.  ``weight_bytes_per``: bytes per weight
    (2 for bf16, 4 for float32, 1 for int8/fp8); ``activation_bytes_per``: the compute dtype's."""
    h, layers = arch.hidden, arch.layers
    wb = weight_bytes_per
    per_layer = [
        Product(rows, h, arch.q_width, weight_bytes=h * arch.q_width * wb),
        Product(rows, h, arch.kv_width, count=2, weight_bytes=2 * h * arch.kv_width * wb),
        Product(rows, arch.q_width, h, weight_bytes=arch.q_width * h * wb),
    ]
    if arch.intermediate:
        per_layer += [Product(rows, h, arch.intermediate, count=2, weight_bytes=2 * h * arch.intermediate * wb),
                      Product(rows, arch.intermediate, h, weight_bytes=arch.intermediate * h * wb)]
    if arch.experts:
        pairs = rows * arch.experts_active  # (position, expert) pairs
        hit = min(arch.experts, pairs)  # experts read at least once
        m = max(1, round(pairs / hit))  # positions per expert, on average
        ie = arch.expert_intermediate
        per_layer += [Product(m, h, ie, count=2 * hit, weight_bytes=2 * hit * h * ie * wb),
                      Product(m, ie, h, count=hit, weight_bytes=hit * ie * h * wb)]
    products = [Product(p.m, p.k, p.n, p.count * layers, p.weight_bytes * layers) for p in per_layer]
    if head_rows:
        products.append(Product(head_rows, h, arch.vocab, weight_bytes=h * arch.vocab * wb))
    attention = 4.0 * rows * keys * arch.q_width * layers
    width = (PASSES_HIDDEN * h + PASSES_QK * (arch.q_width + arch.kv_width)
             + PASSES_INTERMEDIATE * (arch.intermediate + arch.experts_active * arch.expert_intermediate))
    activations = float(rows * width * activation_bytes_per * layers)
    activations += PASSES_LOGITS * head_rows * arch.vocab * activation_bytes_per
    return ForwardCost(tuple(products), attention, activations, arch.head_dim)
