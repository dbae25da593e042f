#!/usr/bin/env bash
# Set up (first run only) and start the language server on stdio with the bundled model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >&2
exec .venv/bin/diffill serve "$@"
