#!/usr/bin/env bash
# The GPU check: the first call of every lease (docs/DEVICE.md), at most 150 s.
# On the device's CUDA GPU, with its own torch and the carried wheels
# (.whl/, scripts/device/pack_wheels.py): the device-aware tests under
# `pytest --device cuda`, the bundled model's middles against the CPU float32
# recording, fill latency and a DiffusionGemma canvas step, all in ONE JSON,
# $OUT/gpu-check.json, rewritten as each part ends (scripts/device/gpu_check.py).
#
#   OUT=... bash scripts/device/gpu-check.sh                    # carry .whl and artifacts/humaneval
#   OUT=$(mktemp -d) bash scripts/device/gpu-check.sh --smoke   # the same on the CPU, few cases (CI)
#
# DIFFILL_WHEELS names another folder of wheels than .whl; DIFFILL_SITE where they
# are installed (default /tmp/diffill-site, emptied first). Other options go to gpu_check.py.
set -euo pipefail
started=$(date +%s.%N)  # the budget counts from here, the install included
cd "$(dirname "$0")/../.."
: "${OUT:?set OUT to the directory that receives gpu-check.json}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
PY=${PYTHON:-python3}
wheels=${DIFFILL_WHEELS:-.whl}
export DIFFILL_SITE=${DIFFILL_SITE:-/tmp/diffill-site}
if compgen -G "$wheels/*.whl" >/dev/null; then
  rm -rf "$DIFFILL_SITE"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$DIFFILL_SITE" "$wheels"/*.whl
  export PYTHONPATH=$DIFFILL_SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}
else
  echo "gpu-check: no wheels in $wheels: running with this Python's own packages" >&2
  unset DIFFILL_SITE
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader || true
exec "$PY" scripts/device/gpu_check.py --out "$OUT/gpu-check.json" --started "$started" "$@"
