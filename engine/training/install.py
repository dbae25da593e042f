"""Make a device export the bundled model (``diffill train install DIR``).

The export carries its training record inside ``diffill.json`` (the device
returns 8 files at most); the bundled directory keeps it apart, as
``training_log.json`` and ``corpus_licenses.json``, beside its MODEL_CARD.md.
The export is loaded through the engine first, so a broken one never
replaces a working model.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from engine.loading import BUNDLED_DIR
from engine.training.model_factory import DIFFILL_META

#: files of a model directory that an install replaces (the model card stays)
MODEL_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors.index.json",
               DIFFILL_META, "training_log.json", "corpus_licenses.json")


def install(src: Path, dest: Path = BUNDLED_DIR) -> dict:
    """Copy the export at ``src`` over the model at ``dest``; returns the training record."""
    from engine import InfillRequest, load_engine

    src, dest = Path(src), Path(dest)
    meta = json.loads((src / DIFFILL_META).read_text())
    record = meta.pop("training", None)
    if not record:
        raise ValueError(f"{src}: diffill.json has no training record (not a device export)")
    engine = load_engine(str(src), device="cpu")  # raises on a broken export
    engine.infill(InfillRequest("def f(x):\n    return ", "\n", max_new_tokens=4))
    dest.mkdir(parents=True, exist_ok=True)
    for old in list(dest.glob("model*.safetensors")) + [dest / f for f in MODEL_FILES]:
        old.unlink(missing_ok=True)
    for path in src.iterdir():
        if path.name.endswith(".safetensors") or (path.name in MODEL_FILES and path.name != DIFFILL_META):
            shutil.copyfile(path, dest / path.name)
    (dest / DIFFILL_META).write_text(json.dumps(meta, indent=2) + "\n")
    corpus = record.get("corpus")
    if corpus:
        (dest / "corpus_licenses.json").write_text(json.dumps(corpus, indent=1, sort_keys=True) + "\n")
    slim = {k: v for k, v in record.items() if k != "corpus"}
    (dest / "training_log.json").write_text(json.dumps(slim, indent=1) + "\n")
    return record
