#!/usr/bin/env bash
# Put, here, the wheels the device jobs need beyond the device image into .whl/
# (git-ignored, carried by `run`): scripts/device/pack_wheels.py packs the
# pure-Python ones from this environment's installed packages (transformers
# trimmed to the families diffill loads) and downloads the compiled ones for the
# device's Python 3.12 (docs/DEVICE.md). Options go to pack_wheels.py.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
exec "$PY" scripts/device/pack_wheels.py --out .whl "$@"
