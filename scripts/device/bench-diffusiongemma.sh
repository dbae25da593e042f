#!/usr/bin/env bash
# The DiffusionGemma GPU benchmark (engine/bench/gpu_block.py: the full-size
# 26B-A4B architecture with random bf16 weights) as one device `run` call
# (docs/DEVICE.md). transformers with `diffusion_gemma` (>= 5.23) travels as a
# wheel in .whl/ (scripts/device/fetch-wheels.sh); results go to $OUT.
#
#   OUT=... bash scripts/device/bench-diffusiongemma.sh
#   OUT=$(mktemp -d) bash scripts/device/bench-diffusiongemma.sh --smoke   # tiny config on the CPU (CI)
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${OUT:?set OUT to the directory that receives the results}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
PY=${PYTHON:-python3}
if [ "${1:-}" = --smoke ]; then
  shift
  exec "$PY" -m engine.bench.gpu_block --tiny --device cpu --steps 2 --repeat 1 --prefix-tokens 64 --candidates 2 \
    --out "$OUT/bench-diffusiongemma-smoke.json" "$@"
fi
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/diffill-site .whl/*.whl
  export PYTHONPATH=/tmp/diffill-site${PYTHONPATH:+:$PYTHONPATH}
fi
if ! "$PY" -c "from transformers import DiffusionGemmaConfig" 2>/dev/null; then
  echo "transformers here has no diffusion_gemma: run scripts/device/fetch-wheels.sh and carry .whl" >&2
  exit 3
fi
nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.sm --format=csv,noheader || true
# eager first (the backend as it runs by default), then the compiled fixed-shape step
"$PY" -m engine.bench.gpu_block --out "$OUT/bench-diffusiongemma.json" "$@"
"$PY" -m engine.bench.gpu_block --compile --skip-generate --out "$OUT/bench-diffusiongemma-compiled.json" "$@"
