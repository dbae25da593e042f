"""Load a DiffusionGemma checkpoint into a ``BlockDiffusionBackend``.

Offline by default: a hub id is read from the local Hugging Face cache only,
unless the user allowed downloads.  bf16 on CUDA, float32 on CPU.  Errors come
back as one line for the user; out of GPU memory names the quantized options
that actually exist here:

* ``fp8``: transformers' fine-grained FP8 (CUDA, compute capability >= 8.9,
  needs ``accelerate``); halves weight bytes, and a step is weight-bandwidth-bound.
* ``int8``: on CPU, PyTorch dynamic quantization of the ``nn.Linear`` layers
  (attention, dense MLP, LM head; the MoE experts are 3-D tensors and stay
  float).  On CUDA only with ``bitsandbytes`` installed (it is not, here).
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

from engine.backends.block_diffusion import MODEL_TYPE, BlockDiffusionBackend, BlockOptions, Mode
from engine.backends.cpu_int8 import quantize_linear_int8
from engine.errors import DeviceError, ModelLoadError, ModelNotFoundError, UnsupportedModelError
from engine.extras import missing_extra_message
from engine.hub_kernels import NO_HUB_KERNELS

FLOAT_DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
                "float16": "float16", "fp16": "float16"}
QUANTIZED = ("int8", "fp8")
OOM_HINT = "try --dtype fp8 (H100/Ada GPUs) or a GPU with more memory"


def _short(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else exc.__class__.__name__


def resolve_dtype(dtype: str | None, device: str) -> str:
    """The dtype name to load with: bf16 on CUDA, float32 on CPU unless told."""
    if dtype is None:
        return "bfloat16" if device.startswith("cuda") else "float32"
    name = dtype.lower()
    if name in FLOAT_DTYPES:
        return FLOAT_DTYPES[name]
    if name in QUANTIZED:
        return name
    raise DeviceError(f"unknown dtype {dtype!r}: use float32, bfloat16, float16, int8 or fp8")


def _weight_bytes(path: str) -> int | None:
    """Bytes of the checkpoint's weights (local directories only)."""
    p = Path(path)
    index = p / "model.safetensors.index.json"
    if index.is_file():
        try:
            return int(json.loads(index.read_text())["metadata"]["total_size"])
        except (KeyError, ValueError, OSError):
            return None
    files = list(p.glob("*.safetensors")) if p.is_dir() else []
    return sum(f.stat().st_size for f in files) or None


def check_gpu_memory(path: str, device: str, dtype: str) -> None:
    """Fail early, in one line, when the weights cannot fit on the GPU."""
    import torch

    if not device.startswith("cuda"):
        return
    need = _weight_bytes(path)
    if need is None:
        return
    if dtype == "float32":
        need *= 2  # checkpoints ship in 16-bit
    elif dtype == "fp8":
        need //= 2
    free, _ = torch.cuda.mem_get_info(torch.device(device))
    if need > free * 0.95:
        raise DeviceError(f"{path} needs ~{need / 2**30:.1f} GiB of GPU memory in {dtype}, "
                          f"{free / 2**30:.1f} GiB free: {OOM_HINT}")


def _quantization_kwargs(dtype: str, device: str) -> dict:
    import torch

    if dtype == "fp8":
        if not device.startswith("cuda"):
            raise DeviceError("fp8 needs a CUDA GPU with compute capability >= 8.9; use float32 on CPU")
        major, minor = torch.cuda.get_device_capability(torch.device(device))
        if (major, minor) < (8, 9):
            raise DeviceError(f"fp8 needs compute capability >= 8.9 (this GPU is {major}.{minor}); use bfloat16")
        from transformers import FineGrainedFP8Config

        return {"quantization_config": FineGrainedFP8Config(), "dtype": torch.bfloat16}
    if dtype == "int8" and device.startswith("cuda"):
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise DeviceError(missing_extra_message("int8 on CUDA", "bitsandbytes", "quant")
                              + "; or use --dtype fp8 or bfloat16") from None
        from transformers import BitsAndBytesConfig

        return {"quantization_config": BitsAndBytesConfig(load_in_8bit=True)}
    if dtype == "int8":
        return {"dtype": torch.float32}
    return {"dtype": getattr(torch, dtype)}


def _load_tokenizer(path: str, allow_download: bool):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path, local_files_only=not allow_download)
    except Exception as exc:  # noqa: BLE001 - tokenizer loaders raise many types
        raise ModelLoadError(f"{path}: cannot load the tokenizer ({_short(exc)})") from None


def load_block(path_or_id: str, *, device: str, dtype: str | None = None, allow_download: bool = False,
               context_tokens: int | None = None, progress: bool = False, mode: Mode | None = None,
               options: BlockOptions | None = None) -> BlockDiffusionBackend:
    """Load ``path_or_id`` on ``device`` ("cpu", "cuda", "cuda:N") and wrap it
    (a hub id from the local cache only, unless ``allow_download``)."""
    import torch
    from transformers import AutoConfig, DiffusionGemmaForBlockDiffusion
    from transformers.utils import logging as hf_logging

    if mode is not None:
        options = options or BlockOptions()
        options.mode = mode

    local = os.path.isdir(path_or_id)
    try:
        config = AutoConfig.from_pretrained(path_or_id, local_files_only=not allow_download)
    except OSError:
        if local:
            raise ModelLoadError(f"{path_or_id}: cannot read config.json") from None
        hint = "" if allow_download else " (downloads are off: pass --allow-download)"
        raise ModelNotFoundError(f"model {path_or_id!r} is not in the local Hugging Face cache{hint}") from None
    if getattr(config, "model_type", None) != MODEL_TYPE:
        raise UnsupportedModelError(f"{path_or_id}: model type {getattr(config, 'model_type', None)!r} is not "
                                    f"{MODEL_TYPE!r} (DiffusionGemmaForBlockDiffusion)")
    name = resolve_dtype(dtype, device)
    if local:
        check_gpu_memory(path_or_id, device, name)
    kwargs = _quantization_kwargs(name, device)
    if not progress:
        hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = DiffusionGemmaForBlockDiffusion.from_pretrained(
                path_or_id, config=config, local_files_only=not allow_download,
                device_map=device if device.startswith("cuda") else None, **kwargs, **NO_HUB_KERNELS)
        model = model.to(device) if "quantization_config" not in kwargs else model
    except torch.OutOfMemoryError:
        raise DeviceError(f"out of GPU memory loading {path_or_id} in {name}: {OOM_HINT}") from None
    except OSError as exc:
        raise ModelLoadError(f"{path_or_id}: missing or unreadable weights ({_short(exc)})") from None
    except (ImportError, RuntimeError, ValueError) as exc:
        if "out of memory" in str(exc).lower():
            raise DeviceError(f"out of GPU memory loading {path_or_id} in {name}: {OOM_HINT}") from None
        raise ModelLoadError(f"{path_or_id}: {_short(exc)}") from None
    finally:
        if not progress:
            hf_logging.enable_progress_bar()
    model.eval()
    if name == "int8":
        model = quantize_linear_int8(model)
    tok = _load_tokenizer(path_or_id, allow_download)
    return BlockDiffusionBackend(model, tok, model_path=path_or_id, device=device, dtype=name,
                                 context_tokens=context_tokens, options=options)
