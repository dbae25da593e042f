"""Write a complete, loadable model directory with a bounded number of files.

The device returns at most 8 files of at most 16 MiB, so the weights are
packed into a fixed number of bf16 safetensors shards (same names at every
export, so a later export overwrites an earlier one) and the training log
travels inside ``diffill.json``.  Each file is written beside its final name
and renamed, so a reader (or a kill) never sees half a file under the real name.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from engine.training.model_factory import DIFFILL_META, FILLER, MASK

SHARD_LIMIT = 15 * 1024 * 1024
INDEX = "model.safetensors.index.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def _tensors(model, dtype) -> dict:
    """State dict without tied duplicates, on the CPU in ``dtype``."""
    tied = set(getattr(model, "_tied_weights_keys", None) or {})
    return {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items() if k not in tied}


def plan_shards(sizes: dict[str, int], limit: int = SHARD_LIMIT) -> list[list[str]]:
    """Greedy first-fit of tensors (by name, in order) into shards of at most ``limit`` bytes."""
    shards: list[list[str]] = []
    used: list[int] = []
    for name, size in sizes.items():
        if size > limit:
            raise ValueError(f"tensor {name} ({size} bytes) is larger than a shard ({limit} bytes)")
        for i, u in enumerate(used):
            if u + size <= limit:
                shards[i].append(name)
                used[i] += size
                break
        else:
            shards.append([name])
            used.append(size)
    return shards


def shard_count(model, dtype, limit: int = SHARD_LIMIT) -> int:
    """How many shards an export of ``model`` takes (checked before training starts)."""
    tied = set(getattr(model, "_tied_weights_keys", None) or {})
    sizes = {k: v.numel() * _itemsize(dtype) for k, v in model.state_dict().items() if k not in tied}
    return len(plan_shards(sizes, limit))


def _itemsize(dtype) -> int:
    import torch

    return torch.empty((), dtype=dtype).element_size()


def _replace(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".part")
    write(tmp)
    os.replace(tmp, path)


def write_static(out_dir: Path, config, hf_tokenizer, dtype_name: str = "bfloat16") -> None:
    """config.json and the tokenizer files (they do not change during training)."""
    import tempfile

    out_dir.mkdir(parents=True, exist_ok=True)
    config.dtype = dtype_name
    _replace(out_dir / "config.json", lambda p: p.write_text(config.to_json_string(use_diff=True)))
    with tempfile.TemporaryDirectory() as tmp:
        hf_tokenizer.save_pretrained(tmp)
        for name in TOKENIZER_FILES:
            data = (Path(tmp) / name).read_bytes()
            _replace(out_dir / name, lambda p, d=data: p.write_bytes(d))


def write_weights(out_dir: Path, model, meta: dict, dtype=None, limit: int = SHARD_LIMIT) -> int:
    """Shards, their index and diffill.json (``meta`` merged over the engine's keys); returns bytes written."""
    import torch
    from safetensors.torch import save_file

    tensors = _tensors(model, dtype or torch.bfloat16)
    plan = plan_shards({k: v.numel() * v.element_size() for k, v in tensors.items()}, limit)
    names = [f"model-{i + 1:05d}-of-{len(plan):05d}.safetensors" for i in range(len(plan))]
    weight_map = {}
    total = 0
    for name, keys in zip(names, plan):
        part = {k: tensors[k] for k in keys}
        _replace(out_dir / name, lambda p, t=part: save_file(t, str(p), metadata={"format": "pt"}))
        weight_map.update({k: name for k in keys})
        total += sum(t.numel() * t.element_size() for t in part.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    _replace(out_dir / INDEX, lambda p: p.write_text(json.dumps(index, indent=1) + "\n"))
    full_meta = {"mask_token": MASK, "filler_token": FILLER}
    full_meta.update(meta)
    _replace(out_dir / DIFFILL_META, lambda p: p.write_text(json.dumps(full_meta, indent=1) + "\n"))
    for stale in out_dir.glob("model-*.safetensors"):
        if stale.name not in names:
            stale.unlink()
    return total
