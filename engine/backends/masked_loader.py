"""Load a masked-LM checkpoint and its tokenizer into a ``MaskedDiffusionBackend``."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

from engine.backends.masked import MaskedDiffusionBackend, MaskedModelInfo
from engine.errors import DeviceError, ModelLoadError, UnsupportedModelError
from engine.hub_kernels import NO_HUB_KERNELS
from engine.window import DEFAULT_CONTEXT_TOKENS

#: weight names that make up a masked-LM head in common architectures
_HEAD_MARKERS = ("decoder", "head", "lm_head", "cls.predictions", "ff_out")


def _meta(path: str) -> dict:
    meta_file = Path(path) / "diffill.json"
    if meta_file.is_file():
        try:
            return json.loads(meta_file.read_text())
        except json.JSONDecodeError as exc:
            raise ModelLoadError(f"{meta_file}: invalid JSON ({exc.msg})") from None
    return {}


def _load_tokenizer(path: str, local: bool, trust_remote_code: bool):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path, local_files_only=True if local else None,
                                             trust_remote_code=trust_remote_code)
    except Exception as exc:  # noqa: BLE001 - tokenizer loaders raise many types
        raise ModelLoadError(f"{path}: cannot load the tokenizer ({_short(exc)})") from None


def _short(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else exc.__class__.__name__


def _load_model(path: str, config, torch_dtype, allow_download: bool, trust_remote_code: bool):
    from transformers import AutoModel, AutoModelForMaskedLM

    kwargs = dict(config=config, dtype=torch_dtype, local_files_only=not allow_download,
                  trust_remote_code=trust_remote_code, output_loading_info=True, **NO_HUB_KERNELS)
    try:
        model, info = AutoModelForMaskedLM.from_pretrained(path, **kwargs)
    except ValueError as exc:
        if "Unrecognized configuration class" not in str(exc) or not trust_remote_code:
            if "Unrecognized configuration class" in str(exc):
                raise UnsupportedModelError(
                    f"{path}: model type {config.model_type!r} has no masked-LM head; "
                    "diffill needs a bidirectional masked-diffusion model") from None
            raise ModelLoadError(f"{path}: {_short(exc)}") from None
        # LLaDA / Dream style: AutoModel with remote code that returns vocabulary logits
        model, info = AutoModel.from_pretrained(path, **kwargs)
    except OSError as exc:
        raise ModelLoadError(f"{path}: missing or unreadable weights ({_short(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - safetensors/torch raise assorted errors on corrupt files
        raise ModelLoadError(f"{path}: corrupt weights ({_short(exc)})") from None
    missing = [k for k in info.get("missing_keys", []) if any(m in k for m in _HEAD_MARKERS)]
    if missing:
        raise UnsupportedModelError(
            f"{path}: the checkpoint has no trained masked-LM head (missing {missing[0]}...)")
    if len(info.get("missing_keys", [])) > 0:
        raise ModelLoadError(f"{path}: incomplete weights (missing {sorted(info['missing_keys'])[0]}...)")
    return model


def load_masked(path: str, config, *, local: bool, device: str, torch_dtype, allow_download: bool,
                trust_remote_code: bool, context_tokens: int | None, progress: bool,
                int8: bool = False) -> MaskedDiffusionBackend:
    """The masked-diffusion backend for ``path``; ``int8`` (CPU only) quantizes
    its linear layers after loading in float32 (``engine.backends.cpu_int8``)."""
    import torch
    from transformers.utils import logging as hf_logging

    meta = _meta(path)
    tok = _load_tokenizer(path, local, trust_remote_code)
    bars_were_on = hf_logging.is_progress_bar_enabled()
    if not progress:
        hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = _load_model(path, config, torch_dtype, allow_download, trust_remote_code)
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()
    try:
        model = model.to(device).eval()
    except torch.OutOfMemoryError:
        raise DeviceError(f"out of GPU memory loading {path}: try --dtype bfloat16 or --device cpu") from None

    mask_id = tok.convert_tokens_to_ids(meta["mask_token"]) if "mask_token" in meta else tok.mask_token_id
    if mask_id is None:
        mask_id = getattr(config, "mask_token_id", None)
    if mask_id is None:
        raise UnsupportedModelError(f"{path}: the tokenizer has no mask token")
    if "filler_token" in meta:
        filler_id = tok.convert_tokens_to_ids(meta["filler_token"])
    else:  # LLaDA / Dream pad the answer with end-of-sequence
        filler_id = tok.eos_token_id
    forbidden = sorted({i for i in (mask_id, tok.pad_token_id, tok.unk_token_id) if i is not None} - {filler_id})
    max_positions = int(getattr(config, "max_position_embeddings", 0) or meta.get("train_context", 2048))
    default_context = int(meta.get("default_context", DEFAULT_CONTEXT_TOKENS))
    info = MaskedModelInfo(mask_id=int(mask_id), filler_id=filler_id, forbidden_ids=forbidden,
                           max_positions=max_positions, default_context=default_context)
    ctx = min(int(context_tokens or default_context), max_positions)
    dtype_name = str(torch_dtype).replace("torch.", "")
    if int8:
        from engine.backends.cpu_int8 import quantize_linear_int8

        model, dtype_name = quantize_linear_int8(model), "int8"
    return MaskedDiffusionBackend(model, tok, info, model_path=path, device=device, dtype=dtype_name,
                                  context_tokens=ctx)
