"""What every natively loaded diffusion family shares.

A family is the recipe that turns one upstream checkpoint layout (its own
``config.json`` keys, weight names and tokenizer files) into one of
transformers' own networks, without running any code from the model
repository.  Each family module fills in a :class:`NativeFamily`; the loader
(``engine.backends.native_loader``) does the rest the same way for all of them.

The networks transformers ships (``Qwen2ForCausalLM``, ``LlamaForCausalLM``)
are causal.  Diffusion models need every position to see every other one, so
:func:`make_bidirectional` switches both places where causality is decided in
transformers 5: ``config.is_causal`` (mask creation falls back to a
bidirectional mask) and each attention module's ``is_causal`` (SDPA's own
causal flag when no mask is passed).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import ModelLoadError, UnsupportedModelError


@dataclass(frozen=True)
class SpecialIds:
    """Token ids the masked-diffusion backend needs, resolved for one checkpoint.

    ``filler`` ends an unknown-length middle (the token the model pads answers
    with); ``document_start`` / ``document_end`` are placed before the prefix /
    after the suffix when the window holds the start / end of the file.
    """

    mask: int
    filler: int | None
    document_start: int | None = None
    document_end: int | None = None
    forbidden: tuple[int, ...] = ()
    extra: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class NativeFamily:
    """One family: how to build, map, align and tokenize it (see the family modules)."""

    name: str
    #: Dream-style models predict token i+1 at position i ("shifted" logits)
    shifted: bool
    #: transformers' own class the network is built from
    model_class: Callable[[], type]
    #: config.json (upstream keys) -> transformers config object
    build_config: Callable[[dict[str, Any]], Any]
    #: regex -> replacement over checkpoint weight names (empty: names already match)
    key_mapping: dict[str, str]
    #: directory -> tokenizer, built from transformers' own tokenizer classes
    load_tokenizer: Callable[[str], Any]
    #: (config.json, tokenizer) -> the ids the backend needs
    special_ids: Callable[[dict[str, Any], Any], SpecialIds]
    #: does this raw config.json belong to the family (used for directories not in the catalog)
    matches: Callable[[dict[str, Any], Path], bool]
    #: context length the model was trained with
    max_positions: Callable[[dict[str, Any]], int]
    #: name of the backend class in engine.backends ("masked" or "dreamon")
    backend: str = "masked"


def read_config(path: str | Path) -> dict[str, Any]:
    """The raw ``config.json`` of a model directory (no transformers involved)."""
    file = Path(path) / "config.json"
    try:
        return json.loads(file.read_text())
    except FileNotFoundError:
        raise ModelLoadError(f"{path}: no config.json") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{file}: unreadable ({exc})") from None


def require(raw: dict[str, Any], key: str, family: str) -> Any:
    if key not in raw:
        raise UnsupportedModelError(f"{family} config.json has no {key!r}: not a {family} checkpoint")
    return raw[key]


def refuse_unsupported(raw: dict[str, Any], expected: dict[str, Any], family: str) -> None:
    """Fail loudly when a config switches on something the native network does not implement."""
    for key, want in expected.items():
        if key in raw and raw[key] != want:
            raise UnsupportedModelError(
                f"{family} config has {key}={raw[key]!r}; diffill's native {family} network "
                f"implements only {key}={want!r}")


def make_bidirectional(model: Any) -> Any:
    """Full attention in a transformers decoder (see module doc); returns ``model``."""
    model.config.is_causal = False
    for module in model.modules():
        if hasattr(module, "is_causal"):
            module.is_causal = False
    return model


def token_id(tok: Any, token: str | None) -> int | None:
    """The id of ``token`` in ``tok``'s vocabulary, or None when it is absent."""
    if not token:
        return None
    ids = tok.convert_tokens_to_ids([token])
    value = ids[0] if ids else None
    if value is None or (tok.unk_token_id is not None and value == tok.unk_token_id and token != tok.unk_token):
        return None
    return int(value)


def first_int(*values: Any) -> int | None:
    """The first value that is an int (config ids may be missing, null or lists)."""
    for value in values:
        if isinstance(value, list) and value:
            value = value[0]
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None
