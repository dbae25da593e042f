"""Resolve a model name to files and load the right backend, offline by default.

``None`` / ``"bundled"`` / ``"diffill-tiny"`` mean the model shipped inside the
package.  A catalog name (``engine/models/catalog/models.json``, optionally
``name:variant``) means that model's downloaded snapshot; one that is not
downloaded is an error naming ``diffill models pull NAME`` (nothing downloads
here).  An existing directory is loaded from disk.  Anything else is treated
as a hub id and is only read from the local Hugging Face cache unless the user
allowed downloads.  Families diffill knows (catalog models, and directories
whose config says Dream/DreamOn/LLaDA) are built natively from transformers'
own classes; remote code runs only for other models, when the user opted in.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from engine.errors import DeviceError, ModelLoadError, ModelNotFoundError, UnsupportedModelError
from engine.machine import cpu_has_fast_bf16
from engine.model_names import BUNDLED_DIR as BUNDLED_DIR
from engine.model_names import BUNDLED_NAME as BUNDLED_NAME
from engine.model_names import catalog_choice as catalog_choice

#: model types handled by the block-diffusion backend (DiffusionGemma)
BLOCK_DIFFUSION_TYPES = {"diffusion_gemma"}
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def resolve_model(model: str | None) -> tuple[str, bool]:
    """Return (path or hub id, is_local_dir)."""
    choice = catalog_choice(model) if model not in (None, "", "bundled") else None
    if model in (None, "", "bundled", BUNDLED_NAME) or (choice is not None and choice.model.bundled):
        if not (BUNDLED_DIR / "config.json").is_file():
            raise ModelNotFoundError(f"the bundled model is missing from {BUNDLED_DIR} (broken install?)")
        return str(BUNDLED_DIR), True
    if choice is not None:
        from engine.model_store import local_path

        return str(local_path(choice.model, choice.label)), True
    path = Path(os.path.expanduser(model))
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"{model}: directory has no config.json, not a model directory")
        return str(path.resolve()), True
    if path.exists():
        raise ModelNotFoundError(f"{model}: is a file, expected a model directory")
    if model.startswith((".", "/", "~")) or not _HUB_ID.fullmatch(model):
        raise ModelNotFoundError(
            f"unknown model {model!r}: not a model directory, not a hub id (owner/name), "
            f"not {BUNDLED_NAME!r}")
    return model, False


def _read_config(path: str, local: bool, allow_download: bool, trust_remote_code: bool):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(path, local_files_only=not allow_download,
                                          trust_remote_code=trust_remote_code)
    except OSError as exc:
        if local:
            raise ModelLoadError(f"{path}: cannot read config.json ({_first_line(exc)})") from None
        hint = "" if allow_download else " (downloads are off: pass --allow-download / allowDownload)"
        raise ModelNotFoundError(f"model {path!r} is not in the local Hugging Face cache{hint}") from None
    except ValueError as exc:
        msg = _first_line(exc)
        if "trust_remote_code" in msg:
            raise UnsupportedModelError(f"{path} needs its own code: pass --trust-remote-code to allow it") from None
        raise ModelLoadError(f"{path}: {msg}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


def pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise DeviceError("device 'cuda' requested but no CUDA GPU is available (use --device cpu)")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise DeviceError(f"unknown device {device!r}: use auto, cpu or cuda")
    return device


def pick_dtype(dtype: str | None, device: str):
    import torch

    if dtype is None:
        if device.startswith("cuda") or cpu_has_fast_bf16():
            return torch.bfloat16
        return torch.float32
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
             "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
    if dtype not in table:
        raise DeviceError(f"unknown dtype {dtype!r}: use float32, bfloat16 or float16")
    return table[dtype]


def _native_family(choice, path: str, local: bool) -> str | None:
    """The family to build natively: the catalog's, or one recognised in a local directory."""
    if choice is not None:
        return choice.model.family
    if not local:
        return None
    from engine.backends.families import detect

    return detect(path)


def _load_native(path: str, family: str, choice, dtype: str | None, dev: str,
                 context_tokens: int | None, progress: bool):
    """Native families: the variant (or ``--dtype int8/int4``) picks bitsandbytes weights."""
    import torch

    from engine.backends.native_loader import QUANTIZED, load_native

    variant = choice.variant if choice is not None else "bf16"
    quantization = variant if variant in QUANTIZED else (dtype if dtype in QUANTIZED else None)
    torch_dtype = torch.bfloat16 if quantization else pick_dtype(dtype, dev)
    return load_native(path, family, device=dev, torch_dtype=torch_dtype, quantization=quantization,
                       context_tokens=context_tokens, progress=progress)


def load_backend(model: str | None, *, device: str = "auto", dtype: str | None = None,
                 allow_download: bool = False, trust_remote_code: bool = False,
                 context_tokens: int | None = None, threads: int | None = None,
                 progress: bool = False, force: bool = False):
    """Load ``model`` and return a backend (see engine.backends.base.Backend).

    A catalog model that does not fit the free GPU memory / RAM is refused with
    the numbers unless ``force``."""
    import torch

    from engine.backends.families import NAMES as NATIVE_FAMILIES

    if threads:
        torch.set_num_threads(int(threads))
    if not allow_download:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    choice = catalog_choice(model)
    path, local = resolve_model(model)
    dev = pick_device(device)
    if choice is not None and not choice.model.bundled and not force:
        from engine.machine import probe
        from engine.model_fit import check_fits

        check_fits(choice, dev, probe(), dtype)
    family = _native_family(choice, path, local)
    if family in NATIVE_FAMILIES:
        return _load_native(path, family, choice, dtype, dev, context_tokens, progress)
    if choice is not None and choice.variant == "fp8":
        dtype = "fp8"
    config = _read_config(path, local, allow_download, trust_remote_code)
    if getattr(config, "model_type", None) in BLOCK_DIFFUSION_TYPES:
        from engine.backends.block_loading import load_block

        return load_block(path, device=dev, dtype=dtype, allow_download=allow_download,
                          context_tokens=context_tokens, progress=progress)
    from engine.backends.masked_loader import load_masked

    int8 = dtype == "int8"
    if int8 and dev != "cpu":
        raise DeviceError("int8 for this model is CPU dynamic quantization: use --device cpu, or "
                          "float32/bfloat16/float16 on the GPU")
    return load_masked(path, config, local=local, device=dev, int8=int8,
                       torch_dtype=pick_dtype("float32" if int8 else dtype, dev),
                       allow_download=allow_download, trust_remote_code=trust_remote_code,
                       context_tokens=context_tokens, progress=progress)
