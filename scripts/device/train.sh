#!/usr/bin/env bash
# The whole GPU training job for the bundled model: one device `run` call
# (docs/DEVICE.md). Builds the corpus from the machine's own Python
# installation, trains within a wall-clock budget and writes a complete model
# directory into $OUT every 90 s and at the end (8 files at most).
#
#   OUT=... bash scripts/device/train.sh [--seconds 540] [--init-from DIR] [...]
#   OUT=$(mktemp -d) bash scripts/device/train.sh --smoke     # same path on the CPU, tiny, < 3 min (CI)
#
# Options are those of `python -m engine.training.device_job --help`.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${OUT:?set OUT to the directory that receives the model}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
PY=${PYTHON:-python3}
if [ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ] && ! python3 -c "import torch" 2>/dev/null; then
  PY=.venv/bin/python
fi
exec "$PY" -m engine.training.device_job --out "$OUT" "$@"
