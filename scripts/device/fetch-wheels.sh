#!/usr/bin/env bash
# Download, here, the wheels a device job needs beyond the device image
# (transformers 5.17 there; DiffusionGemma needs >= 5.23) into .whl/, which
# git ignores and `run` carries (docs/DEVICE.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
version=$("$PY" -c "import transformers; print(transformers.__version__)")
mkdir -p .whl
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl "transformers==$version"
ls -la .whl
