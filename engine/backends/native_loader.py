"""Load a diffusion checkpoint of a known family with transformers' own classes.

No code from the model repository runs: the family module
(``engine.backends.families``) turns the upstream config.json into a
transformers config, names the weights, and says how the logits are aligned;
this module does the same steps for every family:

config -> ``from_pretrained`` (weights renamed with ``key_mapping``, optionally
quantized with bitsandbytes on CUDA) -> full attention -> aligned logits ->
tokenizer and special ids -> ``MaskedDiffusionBackend`` (or DreamOn's).
"""
from __future__ import annotations

import warnings
from typing import Any

from engine.backends.families import get as get_family
from engine.backends.families.base import make_bidirectional, read_config
from engine.backends.masked import MaskedDiffusionBackend, MaskedModelInfo
from engine.errors import DeviceError, ModelLoadError, UnsupportedModelError
from engine.extras import missing_extra_message
from engine.hub_kernels import NO_HUB_KERNELS

#: prompt window for native families when nobody says otherwise: these models
#: run on GPUs, and short windows cut most real prompts (DESIGN.md: use 1024+)
NATIVE_DEFAULT_CONTEXT = 1024
#: quantized forms, all through bitsandbytes on CUDA
QUANTIZED = ("int8", "int4")


def _short(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else exc.__class__.__name__


def quantization_kwargs(quantization: str | None, device: str) -> dict[str, Any]:
    """``from_pretrained`` arguments for 8-/4-bit weights; refuses where they cannot work."""
    if quantization is None:
        return {}
    if quantization not in QUANTIZED:
        raise DeviceError(f"unknown quantization {quantization!r}: use int8 or int4")
    if not device.startswith("cuda"):
        raise DeviceError(f"{quantization} weights need a CUDA GPU (bitsandbytes); on {device} "
                          "use the bf16/float32 model")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise DeviceError(missing_extra_message(f"{quantization} weights", "bitsandbytes", "quant")) from None
    import torch
    from transformers import BitsAndBytesConfig

    if quantization == "int8":
        config = BitsAndBytesConfig(load_in_8bit=True)
    else:
        config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                    bnb_4bit_compute_dtype=torch.bfloat16)
    return {"quantization_config": config, "device_map": device}


def _load_network(path: str, family, raw: dict[str, Any], torch_dtype, quant: dict[str, Any]):
    config = family.build_config(raw)
    cls = family.model_class()
    kwargs = dict(config=config, dtype=torch_dtype, local_files_only=True, output_loading_info=True, **quant,
                  **NO_HUB_KERNELS)
    if family.key_mapping:
        kwargs["key_mapping"] = family.key_mapping
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model, info = cls.from_pretrained(path, **kwargs)
    except OSError as exc:
        raise ModelLoadError(f"{path}: missing or unreadable weights ({_short(exc)})") from None
    except (ImportError, DeviceError):
        raise
    except Exception as exc:  # noqa: BLE001 - safetensors/torch raise assorted errors on corrupt files
        if "out of memory" in str(exc).lower():
            raise DeviceError(f"out of GPU memory loading {path}") from None
        raise ModelLoadError(f"{path}: cannot load the {family.name} weights ({_short(exc)})") from None
    missing = sorted(info.get("missing_keys") or [])
    unexpected = sorted(info.get("unexpected_keys") or [])
    if missing or unexpected:
        what = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
        raise ModelLoadError(f"{path}: the weights do not fit the {family.name} network ({what}, "
                             f"{len(missing)} missing, {len(unexpected)} unexpected)")
    return make_bidirectional(model.eval())


def load_native(path: str, family_name: str, *, device: str, torch_dtype, quantization: str | None = None,
                context_tokens: int | None = None, progress: bool = False) -> MaskedDiffusionBackend:
    """A backend for the checkpoint directory ``path`` of family ``family_name``."""
    import torch
    from transformers.utils import logging as hf_logging

    from engine.backends.aligned_logits import AlignedLogits

    family = get_family(family_name)
    raw = read_config(path)
    quant = quantization_kwargs(quantization, device)
    try:
        tok = family.load_tokenizer(path)
    except Exception as exc:  # noqa: BLE001 - tokenizer loaders raise many types
        raise ModelLoadError(f"{path}: cannot load the {family.name} tokenizer ({_short(exc)})") from None
    try:
        ids = family.special_ids(raw, tok)
    except ValueError as exc:
        raise UnsupportedModelError(f"{path}: {exc}") from None
    bars_were_on = hf_logging.is_progress_bar_enabled()
    if not progress:
        hf_logging.disable_progress_bar()
    try:
        model = _load_network(path, family, raw, torch_dtype, quant)
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()
    if not quant:
        try:
            model = model.to(device)
        except torch.OutOfMemoryError:
            raise DeviceError(f"out of GPU memory loading {path}: try an int8/int4 variant or --device cpu") from None
    network = AlignedLogits(model).eval() if family.shifted else model
    forbidden = sorted({i for i in (ids.mask, tok.pad_token_id, tok.unk_token_id) if i is not None}
                       - {ids.filler} - set(ids.extra.values()))
    max_positions = family.max_positions(raw)
    default_context = min(NATIVE_DEFAULT_CONTEXT, max_positions)
    info = MaskedModelInfo(mask_id=ids.mask, filler_id=ids.filler, forbidden_ids=forbidden,
                           max_positions=max_positions, default_context=default_context,
                           document_start=ids.document_start, document_end=ids.document_end)
    ctx = min(int(context_tokens or default_context), max_positions)
    dtype_name = quantization or str(torch_dtype).replace("torch.", "")
    if family.backend == "dreamon":
        from engine.backends.dreamon_backend import DreamOnBackend

        return DreamOnBackend(network, tok, info, expand_id=ids.extra["expand"], delete_id=ids.extra["delete"],
                              model_path=path, device=device, dtype=dtype_name, context_tokens=ctx)
    return MaskedDiffusionBackend(network, tok, info, model_path=path, device=device, dtype=dtype_name,
                                  context_tokens=ctx)


__all__ = ["QUANTIZED", "load_native", "quantization_kwargs"]
